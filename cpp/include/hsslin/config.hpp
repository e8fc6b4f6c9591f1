#pragma once
/// \file config.hpp
/// \brief Index type, the HSSLIN_CHECK macro, and the error types the bindings translate.

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace hsslin {

/// \brief Signed index type used for every size and offset.
using Index = std::int64_t;

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace hsslin

/// Checks a condition on user-controlled input; stays on in release builds
/// and throws std::invalid_argument (ValueError in Python) with the message.
#define HSSLIN_CHECK(cond, ...)                                                      \
  do {                                                                               \
    if (!(cond)) throw std::invalid_argument(::hsslin::detail::concat(__VA_ARGS__)); \
  } while (0)

/// Checks an internal invariant or a runtime condition (corrupted file,
/// numerical breakdown); throws std::runtime_error (RuntimeError in Python).
#define HSSLIN_ENSURE(cond, ...)                                                  \
  do {                                                                            \
    if (!(cond)) throw std::runtime_error(::hsslin::detail::concat(__VA_ARGS__)); \
  } while (0)
