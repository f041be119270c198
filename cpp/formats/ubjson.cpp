// Universal Binary JSON (UBJSON) decoding, as XGBoost writes its .ubj models, into Python
// values: objects -> dict, arrays -> list, strings -> str, numbers -> int / float,
// T / F / Z -> True / False / None, and strongly typed numeric arrays ([$<type>#<count>
// followed by raw big-endian data) -> 1-D NumPy arrays in native byte order, copied in one
// pass. Every length and count is checked against the remaining bytes and nesting is
// limited, so a truncated or malformed document raises ValueError (never reads past the
// buffer).
//
// On request, an array of objects stored under a given key (XGBoost's `trees`) is decoded
// by column instead: each member holding typed numeric arrays in every object becomes one
// concatenated array with the length of each object's part, and any other member a list
// of its per-object values. This skips building a Python object per array of every tree.
// An array that does not have this shape (not all objects, differing members or element
// types) is decoded as usual.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <string_view>
#include <vector>

#include "formats/columns.h"

namespace py = pybind11;

namespace treelens {
namespace {

constexpr int kMaxDepth = 64;

class UbjReader {
 public:
  UbjReader(const uint8_t* data, size_t size, std::string columns_key)
      : data_(data), end_(size), columns_key_(std::move(columns_key)) {}

  py::object Document() {
    py::object value = Value(0);
    SkipNoops();
    if (pos_ != end_) Fail(std::to_string(end_ - pos_) + " unexpected trailing bytes");
    return value;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw std::invalid_argument("UBJSON: " + what + " at offset " + std::to_string(pos_));
  }

  uint8_t Marker() {
    if (pos_ >= end_) Fail("unexpected end of data");
    return data_[pos_++];
  }

  void SkipNoops() {
    while (pos_ < end_ && data_[pos_] == 'N') ++pos_;
  }

  static int ScalarSize(uint8_t m) {
    switch (m) {
      case 'i': case 'U': return 1;
      case 'I': return 2;
      case 'l': case 'd': return 4;
      case 'L': case 'D': return 8;
      default: return 0;
    }
  }

  // Big-endian bytes at p as an unsigned integer of `size` bytes.
  static uint64_t BigEndian(const uint8_t* p, int size) {
    uint64_t v = 0;
    for (int i = 0; i < size; ++i) v = (v << 8) | p[i];
    return v;
  }

  // Integer scalar of marker m (a length or a count); Fail for other markers.
  int64_t Integer(uint8_t m) {
    const int size = ScalarSize(m);
    if (size == 0 || m == 'd' || m == 'D') {
      --pos_;
      Fail(std::string("expected an integer length, found marker '") + static_cast<char>(m) + "'");
    }
    Need(size, "number runs past the end of data");
    const uint64_t raw = BigEndian(data_ + pos_, size);
    pos_ += size;
    switch (m) {
      case 'i': return static_cast<int8_t>(raw);
      case 'U': return static_cast<uint8_t>(raw);
      case 'I': return static_cast<int16_t>(raw);
      case 'l': return static_cast<int32_t>(raw);
      default: return static_cast<int64_t>(raw);
    }
  }

  void Need(uint64_t n, const char* what) const {
    if (n > end_ - pos_) Fail(what);
  }

  int64_t Length() {
    const int64_t n = Integer(Marker());
    if (n < 0) Fail("negative length " + std::to_string(n));
    return n;
  }

  py::object Scalar(uint8_t m) {
    if (m == 'd' || m == 'D') {
      const int size = ScalarSize(m);
      Need(size, "number runs past the end of data");
      const uint64_t raw = BigEndian(data_ + pos_, size);
      pos_ += size;
      if (m == 'd') {
        const uint32_t bits = static_cast<uint32_t>(raw);
        float f;
        std::memcpy(&f, &bits, sizeof f);
        return py::float_(static_cast<double>(f));
      }
      double d;
      std::memcpy(&d, &raw, sizeof d);
      return py::float_(d);
    }
    return py::int_(Integer(m));
  }

  std::string Bytes(int64_t n) {
    if (static_cast<uint64_t>(n) > end_ - pos_) {
      Fail("need " + std::to_string(n) + " bytes but only " + std::to_string(end_ - pos_) +
           " remain");
    }
    std::string out(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += n;
    return out;
  }

  // An object member's name as raw bytes (checked as UTF-8 when it becomes a str).
  std::string_view Name() {
    const int64_t n = Length();
    if (static_cast<uint64_t>(n) > end_ - pos_) {
      Fail("need " + std::to_string(n) + " bytes but only " + std::to_string(end_ - pos_) +
           " remain");
    }
    const std::string_view out(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += n;
    return out;
  }

  py::str String() {
    const size_t start = pos_;
    const std::string bytes = Bytes(Length());
    PyObject* s = PyUnicode_DecodeUTF8(bytes.data(), static_cast<Py_ssize_t>(bytes.size()),
                                       "strict");
    if (s == nullptr) {
      PyErr_Clear();
      pos_ = start;
      Fail("string is not valid UTF-8");
    }
    return py::reinterpret_steal<py::str>(s);
  }

  py::object Value(int depth) {
    SkipNoops();
    return Typed(Marker(), depth);
  }

  py::object Typed(uint8_t m, int depth) {
    if (ScalarSize(m) > 0) return Scalar(m);
    switch (m) {
      case 'S': return String();
      case '[': case '{':
        if (depth >= kMaxDepth) Fail("containers nested deeper than " + std::to_string(kMaxDepth));
        return Container(m == '[', depth + 1);
      case 'Z': return py::none();
      case 'T': return py::bool_(true);
      case 'F': return py::bool_(false);
      case 'C': return py::str(Bytes(1));
      case 'H': return HighPrecision();
      default:
        --pos_;
        Fail(std::string("unknown marker '") + static_cast<char>(m) + "'");
    }
  }

  py::object HighPrecision() {
    const std::string text = Bytes(Length());
    py::object builtins = py::module_::import("builtins");
    try {
      return builtins.attr("int")(text);
    } catch (py::error_already_set&) {
    }
    try {
      return builtins.attr("float")(text);
    } catch (py::error_already_set&) {
      Fail("bad high-precision number '" + text + "'");
    }
  }

  template <typename T>
  py::array TypedArray(int64_t count, int size) {
    py::array_t<T> out(count);
    T* dst = out.mutable_data();
    const uint8_t* src = data_ + pos_;
    for (int64_t i = 0; i < count; ++i) {
      uint64_t raw = BigEndian(src + i * size, size);
      if (sizeof(T) == 4) {
        const uint32_t narrow = static_cast<uint32_t>(raw);
        std::memcpy(dst + i, &narrow, sizeof(T));
      } else if (sizeof(T) == 8) {
        std::memcpy(dst + i, &raw, sizeof(T));
      } else if (sizeof(T) == 2) {
        const uint16_t narrow = static_cast<uint16_t>(raw);
        std::memcpy(dst + i, &narrow, sizeof(T));
      } else {
        const uint8_t narrow = static_cast<uint8_t>(raw);
        std::memcpy(dst + i, &narrow, sizeof(T));
      }
    }
    pos_ += count * size;
    return out;
  }

  py::array NumericArray(uint8_t type, int64_t count) {
    const int size = ScalarSize(type);
    if (static_cast<uint64_t>(count) > (end_ - pos_) / size) {
      Fail("array of " + std::to_string(count) + " x " + std::to_string(size) +
           " bytes runs past the end");
    }
    switch (type) {
      case 'i': return TypedArray<int8_t>(count, size);
      case 'U': return TypedArray<uint8_t>(count, size);
      case 'I': return TypedArray<int16_t>(count, size);
      case 'l': return TypedArray<int32_t>(count, size);
      case 'L': return TypedArray<int64_t>(count, size);
      case 'd': return TypedArray<float>(count, size);
      default: return TypedArray<double>(count, size);
    }
  }

  py::object Container(bool is_array, int depth) {
    int elem_type = -1;
    int64_t count = -1;
    if (pos_ < end_ && data_[pos_] == '$') {
      ++pos_;
      elem_type = Marker();
      if (Marker() != '#') Fail("typed container without a count");
      count = Length();
    } else if (pos_ < end_ && data_[pos_] == '#') {
      ++pos_;
      count = Length();
    }
    if (is_array && elem_type >= 0 && ScalarSize(static_cast<uint8_t>(elem_type)) > 0) {
      return NumericArray(static_cast<uint8_t>(elem_type), count);
    }
    // Every element takes at least one byte; payload-free typed elements are capped the
    // same way to keep memory bounded.
    if (count >= 0 && static_cast<uint64_t>(count) > end_ - pos_) {
      Fail("count " + std::to_string(count) + " exceeds the " + std::to_string(end_ - pos_) +
           " remaining bytes");
    }
    return is_array ? Array(depth, elem_type, count) : Object(depth, elem_type, count);
  }

  py::object Item(int depth, int elem_type) {
    return elem_type < 0 ? Value(depth) : Typed(static_cast<uint8_t>(elem_type), depth);
  }

  py::object Array(int depth, int elem_type, int64_t count) {
    py::list out;
    if (count < 0) {
      SkipNoops();
      while (pos_ < end_ && data_[pos_] != ']') {
        out.append(Value(depth));
        SkipNoops();
      }
      Marker();
      return out;
    }
    for (int64_t i = 0; i < count; ++i) out.append(Item(depth, elem_type));
    return out;
  }

  py::object Object(int depth, int elem_type, int64_t count) {
    py::dict out;
    if (count < 0) {
      SkipNoops();
      while (pos_ < end_ && data_[pos_] != '}') {
        py::str key = String();
        out[key] = Member(key, depth);
        SkipNoops();
      }
      Marker();
      return out;
    }
    for (int64_t i = 0; i < count; ++i) {
      SkipNoops();
      py::str key = String();
      out[key] = elem_type < 0 ? Member(key, depth) : Item(depth, elem_type);
    }
    return out;
  }


  // The value of object member `key`: by columns when it is the requested key's array.
  py::object Member(const py::str& key, int depth) {
    SkipNoops();
    if (columns_key_.empty() || pos_ >= end_ || data_[pos_] != '[' ||
        depth >= kMaxDepth - 2 || std::string(key) != columns_key_) {
      return Value(depth);
    }
    const size_t start = pos_;
    ++pos_;
    py::object columns = Columns(depth + 1);
    if (!columns.is_none()) return columns;
    pos_ = start;
    return Value(depth);
  }

  // One member across the objects of a column-decoded array.
  struct Column {
    bool numeric = false;  // typed numeric arrays (else any values, as a list)
    uint8_t type = 0;      // their UBJSON element type
    std::vector<const uint8_t*> parts;  // where each object's elements start
    std::vector<int64_t> lengths;       // and how many it has
    int64_t total = 0;
    py::list values;
    int64_t stamp = -1;  // last object holding it
  };

  // {"n_items": n, "arrays": {key: (values [sum], lengths int64 [n])}, "lists": {key: [n]}}
  // for an array of like objects (just after its '['); None, pos_ anywhere, otherwise.
  py::object Columns(int depth) {
    if (pos_ < end_ && data_[pos_] == '$') return py::none();
    int64_t count = -1;
    if (pos_ < end_ && data_[pos_] == '#') {
      ++pos_;
      count = Length();
      if (static_cast<uint64_t>(count) > end_ - pos_) return py::none();
    }
    ColumnSet<Column> columns;
    int64_t n = 0;
    for (;; ++n) {
      SkipNoops();
      if (count >= 0 ? n == count : (pos_ < end_ && data_[pos_] == ']')) break;
      if (Marker() != '{' || (pos_ < end_ && (data_[pos_] == '$' || data_[pos_] == '#'))) {
        return py::none();
      }
      size_t members = 0;
      for (SkipNoops(); pos_ < end_ && data_[pos_] != '}'; SkipNoops()) {
        Column* column = columns.Find(Name(), n, members);
        if (column == nullptr) return py::none();
        ++members;
        if (!ColumnValue(*column, n == 0, depth + 1)) return py::none();
      }
      Marker();
      if (members != columns.size()) return py::none();
    }
    if (count < 0) Marker();
    return columns.Result(n, Elements, [this](const std::string& what) { Fail(what); });
  }

  // Appends one object's value to `column` (its kind is set by the first object); false
  // when the value is of another kind than the column's.
  bool ColumnValue(Column& column, bool first, int depth) {
    SkipNoops();
    const bool typed = end_ - pos_ >= 3 && data_[pos_] == '[' && data_[pos_ + 1] == '$' &&
                       ScalarSize(data_[pos_ + 2]) > 0;
    if (first) {
      column.numeric = typed;
      if (typed) column.type = data_[pos_ + 2];
    }
    if (!column.numeric) {
      if (typed && !first) return false;
      column.values.append(Value(depth));
      return true;
    }
    if (!typed || data_[pos_ + 2] != column.type) return false;
    pos_ += 3;
    if (Marker() != '#') Fail("typed container without a count");
    const int64_t count = Length();
    const int size = ScalarSize(column.type);
    if (static_cast<uint64_t>(count) > (end_ - pos_) / size) {
      Fail("array of " + std::to_string(count) + " x " + std::to_string(size) +
           " bytes runs past the end");
    }
    column.parts.push_back(data_ + pos_);
    column.total += count;
    pos_ += static_cast<size_t>(count) * size;
    column.lengths.push_back(count);
    return true;
  }

  // A numeric column's elements, all objects' parts in order: int64 for integer types,
  // float32 for 'd', float64 for 'D' [total].
  static py::array Elements(const Column& c) {
    switch (c.type) {
      case 'i': return Concatenate<int8_t, int64_t>(c);
      case 'U': return Concatenate<uint8_t, int64_t>(c);
      case 'I': return Concatenate<int16_t, int64_t>(c);
      case 'l': return Concatenate<int32_t, int64_t>(c);
      case 'L': return Concatenate<int64_t, int64_t>(c);
      case 'd': return Concatenate<float, float>(c);
      default: return Concatenate<double, double>(c);
    }
  }

  // The big-endian S elements of a column's parts, converted to T.
  template <typename S, typename T>
  static py::array Concatenate(const Column& c) {
    using Bits = std::conditional_t<sizeof(S) == 1, uint8_t,
                 std::conditional_t<sizeof(S) == 2, uint16_t,
                 std::conditional_t<sizeof(S) == 4, uint32_t, uint64_t>>>;
    py::array_t<T> out(static_cast<py::ssize_t>(c.total));
    T* dst = out.mutable_data();
    for (size_t k = 0; k < c.parts.size(); ++k) {
      const uint8_t* src = c.parts[k];
      for (int64_t i = 0; i < c.lengths[k]; ++i) {
        const Bits bits = static_cast<Bits>(BigEndian(src + i * sizeof(S), sizeof(S)));
        S value;
        std::memcpy(&value, &bits, sizeof(S));
        *dst++ = static_cast<T>(value);
      }
    }
    return out;
  }



  const uint8_t* data_;
  size_t end_;
  size_t pos_ = 0;
  std::string columns_key_;  // the member whose array of objects is decoded by columns
};

}  // namespace

void BindUbjson(py::module_& m) {
  m.def(
      "ubjson_loads",
      [](py::buffer data, const std::string& columns) {
        const py::buffer_info info = data.request();
        if (info.ndim > 1 || info.itemsize != 1) {
          throw std::invalid_argument("UBJSON: expected a bytes-like object");
        }
        UbjReader reader(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size),
                         columns);
        return reader.Document();
      },
      py::arg("data"), py::arg("columns") = "",
      "Parse one UBJSON document: dict / list / str / int / float / bool / None, with "
      "typed numeric arrays as 1-D NumPy arrays [count] in native byte order. An array of "
      "like objects under a member named `columns` becomes {'n_items': n, 'arrays': {key: "
      "(values [total], lengths int64 [n])}, 'lists': {key: [n values]}}; integers widen to "
      "int64, 'd' elements stay float32.");
}

}  // namespace treelens
