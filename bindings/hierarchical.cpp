// Bindings of HSSMatrix and HODLRMatrix for float and double.
#include <pybind11/stl.h>

#include <tuple>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "hsslin/hodlr.hpp"
#include "hsslin/hss.hpp"

namespace hsslin::bindings {
namespace {

/// Shapes a size query accepts: a tree has up to four nodes per row or
/// column, so a larger shape would allocate for a matrix nobody can hold.
void check_query_shape(Index rows, Index cols) {
  constexpr Index kMax = Index(1) << 31;
  if (rows < 1 || cols < 1 || rows > kMax || cols > kMax)
    throw py::value_error("rows and cols must be in [1, 2**31], got " + std::to_string(rows) + "x" +
                          std::to_string(cols));
}

template <class H, class T>
py::array dense_of(const H& self, bool transpose) {
  const Index m = transpose ? self.cols() : self.rows();
  const Index n = transpose ? self.rows() : self.cols();
  py::array_t<T, py::array::c_style> out({m, n});
  T* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    self.to_dense(data, transpose);
  }
  return out;
}

// What HSS and HODLR both expose: products, the dense form, shape, depth,
// bytes, and the file form.
template <class H, class T>
void def_tree_operator(py::class_<H>& cls) {
  cls.def("apply", &apply_operator<H, T>, py::arg("x"), py::arg("transpose"))
      .def("to_dense", &dense_of<H, T>, py::arg("transpose"))
      .def_property_readonly("rows", &H::rows)
      .def_property_readonly("cols", &H::cols)
      .def_property_readonly("levels", [](const H& h) { return h.tree().levels(); })
      .def_property_readonly("nbytes", &H::nbytes);
  def_serialization(cls);
}

template <class T>
void register_hss(py::module_& m, const char* name) {
  using H = HSSMatrix<T>;
  py::class_<H> cls(m, name, py::module_local());
  cls.def_static(
         "compress",
         [](const py::array& A, const HSSOptions& options) {
           const ConstRowMap<T> map = as_row_map<T>(A, "A");
           py::gil_scoped_release release;
           return H::compress(map, options);
         },
         py::arg("A"), py::arg("options"))
      .def_property_readonly("error_estimate", &H::error_estimate)
      .def_property_readonly("samples", &H::samples)
      .def_property_readonly("symmetric", &H::symmetric)
      .def_property_readonly("is_dense_fallback", &H::is_dense_fallback)
      .def(
          "dense_view",
          [](py::object self) -> py::object {
            // A read-only numpy view of the single dense block (a one-leaf tree or the
            // dense fallback), sharing the packed storage; None when there is a tree.
            const H& h = self.cast<const H&>();
            if (h.tree().levels() != 0) return py::none();
            const auto D = h.D(0);
            py::array_t<T> view({D.rows(), D.cols()},
                                {D.cols() * Index(sizeof(T)), Index(sizeof(T))}, D.data(), self);
            py::detail::array_proxy(view.ptr())->flags &=
                ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
            return std::move(view);
          },
          "read-only view of the dense block (one-leaf tree or dense fallback), else None")
      .def_property_readonly("tol", [](const H& h) { return h.options().tol(); })
      .def_property_readonly("leaf_size", [](const H& h) { return h.options().leaf_size(); })
      .def_property_readonly("max_rank", [](const H& h) { return h.options().max_rank(); })
      .def_property_readonly("seed", [](const H& h) { return h.options().seed(); })
      .def(
          "level_ranks",
          [](const H& h, bool columns) {
            std::vector<std::vector<Index>> out;
            for (int l = 1; l <= h.tree().levels(); ++l) {
              std::vector<Index> level;
              for (Index i = ClusterTree::level_begin(l); i < ClusterTree::level_end(l); ++i)
                level.push_back(columns ? h.col_rank(i) : h.row_rank(i));
              out.push_back(std::move(level));
            }
            return out;
          },
          py::arg("columns"))
      .def("parts",
           [](const H& h) {
             // Copies of node i's five factors (empty where the node has none).
             py::list nodes;
             for (Index i = 0; i < h.tree().size(); ++i) {
               py::dict d;
               d["D"] = to_numpy(Matrix<T>(h.D(i)));
               d["U"] = to_numpy(Matrix<T>(h.U(i)));
               d["V"] = to_numpy(Matrix<T>(h.V(i)));
               d["B12"] = to_numpy(Matrix<T>(h.B12(i)));
               d["B21"] = to_numpy(Matrix<T>(h.B21(i)));
               nodes.append(d);
             }
             return nodes;
           })
      .def("copy", [](const H& h) { return H(h); });
  def_tree_operator<H, T>(cls);
  if constexpr (std::is_same_v<T, float>)
    cls.def(
        "to_float64",
        [](const H& h) {
          py::gil_scoped_release release;
          return h.template cast<double>();
        },
        "the same matrix in float64 (every stored value converted exactly)");
}

template <class T>
py::dict block_parts(const LowRankBlock<T>& b) {
  py::dict d;
  d["is_dense"] = b.is_dense;
  d["error"] = b.error;
  if (b.is_dense) {
    d["dense"] = to_numpy(b.dense);
  } else {
    d["U"] = to_numpy(b.U);
    d["V"] = to_numpy(b.V);
  }
  return d;
}

template <class T>
LowRankBlock<T> block_from(const py::dict& d) {
  LowRankBlock<T> b;
  b.is_dense = d["is_dense"].cast<bool>();
  b.error = d.contains("error") ? d["error"].cast<double>() : 0.0;
  if (b.is_dense) {
    b.dense = from_numpy<T>(d["dense"].cast<py::array>(), "dense");
  } else {
    b.U = from_numpy<T>(d["U"].cast<py::array>(), "U");
    b.V = from_numpy<T>(d["V"].cast<py::array>(), "V");
  }
  return b;
}

template <class T>
void register_hodlr(py::module_& m, const char* name) {
  using H = HODLRMatrix<T>;
  py::class_<H> cls(m, name, py::module_local());
  def_tree_operator<H, T>(cls);
  cls.def_static(
         "compress",
         [](const py::array& A, const HODLROptions& options) {
           const ConstRowMap<T> map = as_row_map<T>(A, "A");
           py::gil_scoped_release release;
           return H::compress(map, options);
         },
         py::arg("A"), py::arg("options"),
         "Compresses A to options.tol, or to options.rank's schedule (the default tolerance "
         "when neither is set)")
      .def_static(
          "nbytes_for",
          [](Index rows, Index cols, const HODLROptions& options) {
            check_query_shape(rows, cols);
            HSSLIN_CHECK(options.rank() != 0, "nbytes_for needs a rank schedule (options.rank)");
            const ClusterTree tree(rows, cols, options.leaf_size());
            return hodlr_nbytes(tree, hodlr_schedule_ranks(tree, options), Index(sizeof(T)));
          },
          py::arg("rows"), py::arg("cols"), py::arg("options"),
          "nbytes of compress(A, options) with a rank schedule, for any rows x cols A")
      .def_property_readonly("relative_error", &H::relative_error)
      .def_property_readonly("tol", [](const H& h) { return h.options().tol(); })
      .def_property_readonly("rank", [](const H& h) { return h.options().rank(); })
      .def_property_readonly("rank_decay", [](const H& h) { return h.options().rank_decay(); })
      .def_property_readonly("min_rank", [](const H& h) { return h.options().min_rank(); })
      .def_property_readonly("leaf_size", [](const H& h) { return h.options().leaf_size(); })
      .def_property_readonly("seed", [](const H& h) { return h.options().seed(); })
      .def("level_ranks",
           [](const H& h) {
             // Per level (1 = the root's children): ranks of B12, B21 of each
             // inner node one level up; -1 marks a block kept dense.
             std::vector<std::vector<Index>> out;
             for (int l = 0; l < h.tree().levels(); ++l) {
               std::vector<Index> level;
               for (Index i = ClusterTree::level_begin(l); i < ClusterTree::level_end(l); ++i) {
                 level.push_back(h.block_rank(i, false));
                 level.push_back(h.block_rank(i, true));
               }
               out.push_back(std::move(level));
             }
             return out;
           })
      .def("parts",
           [](const H& h) {
             py::list nodes;
             for (Index i = 0; i < h.tree().size(); ++i) {
               py::dict d;
               const auto nd = h.node(i);
               if (h.tree().is_leaf(i)) {
                 d["D"] = to_numpy(nd.D);
               } else {
                 d["B12"] = block_parts(nd.B12);
                 d["B21"] = block_parts(nd.B21);
               }
               nodes.append(d);
             }
             return nodes;
           })
      .def_static(
          "from_parts",
          [](Index rows, Index cols, int levels, const py::list& parts, double rank_decay,
             Index leaf_size, double error) {
            ClusterTree tree = ClusterTree::with_levels(rows, cols, levels);
            HSSLIN_CHECK(Index(parts.size()) == tree.size(), "parts: expected ", tree.size(),
                         " nodes, got ", parts.size());
            std::vector<typename H::Node> nodes(size_t(tree.size()));
            for (Index i = 0; i < tree.size(); ++i) {
              const py::dict d = parts[size_t(i)].cast<py::dict>();
              if (tree.is_leaf(i)) {
                nodes[size_t(i)].D = from_numpy<T>(d["D"].cast<py::array>(), "D");
              } else {
                nodes[size_t(i)].B12 = block_from<T>(d["B12"].cast<py::dict>());
                nodes[size_t(i)].B21 = block_from<T>(d["B21"].cast<py::dict>());
              }
            }
            HODLROptions o;
            o.set_rank_decay(rank_decay).set_leaf_size(leaf_size);
            return H::from_parts(std::move(tree), std::move(nodes), o, error);
          },
          py::arg("rows"), py::arg("cols"), py::arg("levels"), py::arg("parts"),
          py::arg("rank_decay"), py::arg("leaf_size"), py::arg("error"))
      .def("copy", [](const H& h) { return H(h); });
}

}  // namespace

void register_hierarchical(py::module_& m) {
  m.def(
      "cluster_tree",
      [](Index rows, Index cols, Index leaf_size) {
        check_query_shape(rows, cols);
        const ClusterTree tree(rows, cols, leaf_size);
        std::vector<std::tuple<Index, Index, Index, Index>> ranges;
        ranges.reserve(size_t(tree.size()));
        for (Index i = 0; i < tree.size(); ++i) {
          const ClusterNode& c = tree.node(i);
          ranges.emplace_back(c.row_begin, c.row_end, c.col_begin, c.col_end);
        }
        return py::make_tuple(tree.levels(), ranges);
      },
      py::arg("rows"), py::arg("cols"), py::arg("leaf_size"),
      "(levels, [(row_begin, row_end, col_begin, col_end) per node in heap order]) of the "
      "cluster tree HSS and HODLR matrices of this shape and leaf size are built on");
  register_hss<float>(m, "HSSMatrix32");
  register_hss<double>(m, "HSSMatrix64");
  register_hodlr<float>(m, "HODLRMatrix32");
  register_hodlr<double>(m, "HODLRMatrix64");
}

}  // namespace hsslin::bindings
