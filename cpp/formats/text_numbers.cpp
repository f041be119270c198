// Whitespace-separated numbers of many text lines parsed into one array, as text model
// formats (LightGBM's `key=v1 v2 ...` tree lines) store their node arrays (tokens as
// text_tokens.h reads them); a token that is not entirely a number raises ValueError
// naming its line.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "formats/text_tokens.h"

namespace py = pybind11;

namespace treelens {
namespace {

std::string_view Utf8(const py::handle& item, size_t line) {
  if (!PyUnicode_Check(item.ptr())) {
    throw std::invalid_argument("line " + std::to_string(line) + " is not a string");
  }
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(item.ptr(), &size);
  if (data == nullptr) throw py::error_already_set();
  return std::string_view(data, static_cast<size_t>(size));
}

template <typename T>
T ParseToken(std::string_view token, size_t line) {
  T value{};
  if (!ParseNumber(token, value)) {
    throw std::invalid_argument("line " + std::to_string(line) + ": '" + std::string(token) +
                                "' is not a number");
  }
  return value;
}

template <typename T>
py::tuple ParseLines(const py::list& lines) {
  const size_t n_lines = lines.size();
  std::vector<std::string_view> texts(n_lines);
  py::array_t<int64_t> counts(static_cast<py::ssize_t>(n_lines));
  int64_t* count = counts.mutable_data();
  int64_t total = 0;
  for (size_t i = 0; i < n_lines; ++i) {
    texts[i] = Utf8(lines[i], i);
    count[i] = 0;
    ForEachToken(texts[i], [&](std::string_view) { ++count[i]; });
    total += count[i];
  }
  py::array_t<T> values(total);
  T* out = values.mutable_data();
  for (size_t i = 0; i < n_lines; ++i) {
    ForEachToken(texts[i], [&](std::string_view token) { *out++ = ParseToken<T>(token, i); });
  }
  return py::make_tuple(values, counts);
}

}  // namespace

void BindTextNumbers(py::module_& m) {
  m.def(
      "parse_number_lines",
      [](const py::list& lines, bool integers) {
        return integers ? ParseLines<int64_t>(lines) : ParseLines<double>(lines);
      },
      py::arg("lines"), py::arg("integers"),
      "Whitespace-separated numbers of each line: (values int64 or float64 [total], "
      "counts int64 [n_lines]); ValueError 'line i: ...' on a token that is not a number.");
}

}  // namespace treelens
