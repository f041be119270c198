// The column form of an array of like objects, shared by the JSON and UBJSON readers: each
// member's values across the objects, collected by the reader into a Column of its own type
// (which has `numeric`, `lengths`, `values` and `stamp`), then returned to Python as
//   {"n_items": n, "arrays": {key: (values [total], lengths int64 [n])},
//    "lists": {key: [n values]}}.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace treelens {

template <typename Column>
class ColumnSet {
 public:
  // The column of member `key`, read as the `members`-th member of object n (0-based):
  // made while reading the first object; null when the objects are not alike (a key the
  // first object lacks, or one key twice in an object).
  Column* Find(std::string_view key, int64_t n, size_t members) {
    // Objects written by one program list their members in one order: try that first.
    size_t k = members < keys_.size() && keys_[members] == key ? members : 0;
    while (k < keys_.size() && keys_[k] != key) ++k;
    Column* column = nullptr;
    if (k < keys_.size()) {
      column = columns_[k].get();
    } else if (n == 0) {
      columns_.push_back(std::make_unique<Column>());
      column = columns_.back().get();
      keys_.emplace_back(key);
    }
    if (column == nullptr || column->stamp == n) return nullptr;
    column->stamp = n;
    return column;
  }

  size_t size() const { return columns_.size(); }

  // The Python form of n_items objects. values(column) gives a numeric column's values
  // array; fail(message) raises the reader's error (member names must be UTF-8).
  template <typename Values, typename Fail>
  pybind11::dict Result(int64_t n_items, Values values, Fail fail) const {
    namespace py = pybind11;
    py::dict arrays, lists;
    for (size_t k = 0; k < columns_.size(); ++k) {
      const Column& c = *columns_[k];
      PyObject* name = PyUnicode_DecodeUTF8(keys_[k].data(),
                                            static_cast<Py_ssize_t>(keys_[k].size()), "strict");
      if (name == nullptr) {
        PyErr_Clear();
        fail("member name is not valid UTF-8");
      }
      py::str key = py::reinterpret_steal<py::str>(name);
      if (c.numeric) {
        arrays[key] = py::make_tuple(
            values(c), py::array_t<int64_t>(static_cast<py::ssize_t>(c.lengths.size()),
                                            c.lengths.data()));
      } else {
        lists[key] = c.values;
      }
    }
    py::dict out;
    out["n_items"] = py::int_(n_items);
    out["arrays"] = arrays;
    out["lists"] = lists;
    return out;
  }

 private:
  std::vector<std::unique_ptr<Column>> columns_;
  std::vector<std::string> keys_;
};

}  // namespace treelens
