# The optional CUDA extension hsslin._cuda (docs/cuda.md). Included by
# CMakeLists.txt; everything CUDA-specific stays in this file.
#
# HSSLIN_CUDA=AUTO (default): build it when CMake finds a CUDA compiler
# (CUDACXX, or nvcc on PATH) of CUDA 12.5 or later together with cuBLAS;
# otherwise print why not and build the CPU extension alone, as without
# this file. ON: build it or stop with the reason. OFF: do not look.
# (enable_language must run at file scope, hence no function here.)
set(HSSLIN_CUDA "AUTO" CACHE STRING "Build the CUDA extension hsslin._cuda: AUTO, ON or OFF")
set_property(CACHE HSSLIN_CUDA PROPERTY STRINGS AUTO ON OFF)
set(HSSLIN_CUBLAS_ROOT "" CACHE PATH "Prefix holding include/cublas_v2.h and lib/libcublas (default: the compiler's toolkit)")

set(hsslin_cuda_missing "")
if(HSSLIN_CUDA STREQUAL "OFF")
  set(hsslin_cuda_missing "HSSLIN_CUDA=OFF")
else()
  # Where nvcc is (CUDACXX, else PATH, as CMake looks) and whether cuBLAS
  # lies beside it or under HSSLIN_CUBLAS_ROOT, before any compiler probe: a
  # machine with nvcc but no cuBLAS (hsslin's development machines, CI)
  # then configures the CPU build in the time it always took.
  if(DEFINED ENV{CUDACXX})
    set(hsslin_nvcc "$ENV{CUDACXX}")
  else()
    find_program(hsslin_nvcc nvcc)
  endif()
  if(NOT hsslin_nvcc)
    set(hsslin_cuda_missing "no CUDA compiler was found (set CUDACXX to nvcc)")
  else()
    get_filename_component(hsslin_nvcc "${hsslin_nvcc}" REALPATH)
    get_filename_component(hsslin_cuda_root "${hsslin_nvcc}" DIRECTORY)
    get_filename_component(hsslin_cuda_root "${hsslin_cuda_root}" DIRECTORY)
    set(hsslin_cuda_roots ${HSSLIN_CUBLAS_ROOT} ${hsslin_cuda_root})
    find_path(HSSLIN_CUBLAS_INCLUDE_DIR cublas_v2.h HINTS ${hsslin_cuda_roots}
              PATH_SUFFIXES include NO_DEFAULT_PATH)
    # PyPI's wheels ship only the versioned library (libcublas.so.13).
    find_library(HSSLIN_CUBLAS_LIBRARY NAMES cublas libcublas.so.13 libcublas.so.12
                 HINTS ${hsslin_cuda_roots} PATH_SUFFIXES lib lib64 NO_DEFAULT_PATH)
    if(NOT HSSLIN_CUBLAS_INCLUDE_DIR OR NOT HSSLIN_CUBLAS_LIBRARY)
      set(hsslin_cuda_missing
          "cuBLAS was not found under ${hsslin_cuda_roots} (set HSSLIN_CUBLAS_ROOT)")
    endif()
  endif()
endif()

if(NOT hsslin_cuda_missing)
  # PyPI's CUDA 13 wheels (docs/cuda.md) install the libraries in lib/,
  # where their nvcc.profile looks in lib64/: without the -L, that nvcc
  # cannot link CMake's compiler-identification program.
  if(EXISTS "${hsslin_cuda_root}/lib/libcudart_static.a" AND NOT EXISTS "${hsslin_cuda_root}/lib64")
    set(ENV{CUDAFLAGS} "$ENV{CUDAFLAGS} -L${hsslin_cuda_root}/lib")
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    set(hsslin_cuda_missing "${hsslin_nvcc} does not work as a CUDA compiler (CMake's check failed)")
  endif()
endif()

if(NOT hsslin_cuda_missing)
  # Real code for Turing, Ampere and Hopper (sm_86/89 run the sm_80 code),
  # and PTX that newer GPUs compile at load time.
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 75-real 80-real 90-real 90-virtual)
  endif()
  enable_language(CUDA)
  if(CMAKE_CUDA_COMPILER_VERSION VERSION_LESS 12.5)
    # cublas<t>gemmGroupedBatched_64 arrived in CUDA 12.5.
    set(hsslin_cuda_missing "CUDA ${CMAKE_CUDA_COMPILER_VERSION} is older than 12.5")
  endif()
endif()

if(hsslin_cuda_missing)
  if(HSSLIN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "HSSLIN_CUDA=ON, but ${hsslin_cuda_missing}")
  endif()
  message(STATUS "hsslin: not building hsslin._cuda: ${hsslin_cuda_missing}")
else()
  message(STATUS "hsslin: building hsslin._cuda with CUDA ${CMAKE_CUDA_COMPILER_VERSION} "
                 "(${CMAKE_CUDA_COMPILER}), ${HSSLIN_CUBLAS_LIBRARY}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES}")
  set(hsslin_src ${PROJECT_SOURCE_DIR})
  add_library(hsslin_cuda_kernels STATIC ${hsslin_src}/cpp/cuda/device_operator.cu
                                         ${hsslin_src}/cpp/cuda/kernels.cu)
  set_target_properties(hsslin_cuda_kernels PROPERTIES
    POSITION_INDEPENDENT_CODE ON CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON
    CUDA_RUNTIME_LIBRARY Static CUDA_VISIBILITY_PRESET hidden)
  target_include_directories(hsslin_cuda_kernels PUBLIC ${hsslin_src}/cpp/cuda ${hsslin_src}/cpp/include)
  # -isystem, searched after the compiler's own headers: a cuBLAS from
  # another tree (HSSLIN_CUBLAS_ROOT) must not replace the toolkit's cuda_runtime.h.
  target_include_directories(hsslin_cuda_kernels SYSTEM PRIVATE ${HSSLIN_CUBLAS_INCLUDE_DIR})
  target_link_libraries(hsslin_cuda_kernels PUBLIC ${HSSLIN_CUBLAS_LIBRARY})

  pybind11_add_module(_cuda MODULE ${hsslin_src}/bindings/cuda/module.cpp)
  target_link_libraries(_cuda PRIVATE hsslin_cuda_kernels)
  # cuBLAS is found at run time beside the package (PyPI's nvidia wheels
  # install into site-packages/nvidia/cu13/lib) or where the build found it.
  get_filename_component(hsslin_cublas_dir ${HSSLIN_CUBLAS_LIBRARY} DIRECTORY)
  set_target_properties(_cuda PROPERTIES
    INSTALL_RPATH "$ORIGIN/../nvidia/cu13/lib;${hsslin_cublas_dir}")
  install(TARGETS _cuda LIBRARY DESTINATION hsslin)
endif()
