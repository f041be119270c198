// JSON decoding (RFC 8259, plus the NaN / Infinity / -Infinity literals Python's json module
// reads) into the Python values json.loads gives: objects -> dict (the last of a repeated
// key wins), arrays -> list, strings -> str, integers -> int, other numbers -> float.
// Numbers are read with std::from_chars, rounded as Python's float() and int() read them.
//
// On request, an array of objects stored under a given key (XGBoost's `trees`) is decoded
// by column, as the UBJSON reader does: each member holding an array of integers in every
// object becomes one int64 array (arrays of other numbers: one float64 array) with each
// object's length, and any other member a list of its per-object values. An array that
// does not have this shape is decoded as usual.
//
// This reader is strict: anything it does not read exactly as json.loads would (invalid
// syntax, lone surrogates, nesting deeper than 64, invalid UTF-8) raises ValueError, and the
// caller can read the text with json.loads instead.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "formats/columns.h"

namespace py = pybind11;

namespace treelens {
namespace {

constexpr int kMaxDepth = 64;

class JsonReader {
 public:
  JsonReader(const char* data, size_t size, std::string columns_key)
      : data_(data), end_(size), columns_key_(std::move(columns_key)) {}

  py::object Document() {
    py::object value = Value(0);
    SkipSpace();
    if (pos_ != end_) Fail("trailing data");
    return value;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw std::invalid_argument("JSON: " + what + " at offset " + std::to_string(pos_));
  }

  void SkipSpace() {
    while (pos_ < end_ && (data_[pos_] == ' ' || data_[pos_] == '\n' || data_[pos_] == '\r' ||
                           data_[pos_] == '\t')) {
      ++pos_;
    }
  }

  char Peek() {
    SkipSpace();
    if (pos_ >= end_) Fail("unexpected end of data");
    return data_[pos_];
  }

  void Expect(char c) {
    if (Peek() != c) Fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  bool Literal(std::string_view word) {
    if (std::string_view(data_ + pos_, std::min(word.size(), end_ - pos_)) != word) return false;
    pos_ += word.size();
    return true;
  }

  py::object Value(int depth) {
    const char c = Peek();
    if (c == '{' || c == '[') {
      if (depth >= kMaxDepth) Fail("nested too deeply");
      ++pos_;
      return c == '{' ? Object(depth + 1) : Array(depth + 1);
    }
    if (c == '"') return String();
    if (Literal("true")) return py::bool_(true);
    if (Literal("false")) return py::bool_(false);
    if (Literal("null")) return py::none();
    bool integer = false;
    const std::string_view token = NumberToken(integer);
    return integer ? Integer(token) : py::object(py::float_(Double(token)));
  }

  // The next number's text (integer: no fraction or exponent), JSON grammar checked.
  std::string_view NumberToken(bool& integer) {
    const size_t start = pos_;
    for (std::string_view word : {"NaN", "Infinity", "-Infinity"}) {
      if (Literal(word)) return std::string_view(data_ + start, word.size());
    }
    auto digits = [this] {
      const size_t from = pos_;
      while (pos_ < end_ && data_[pos_] >= '0' && data_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (pos_ < end_ && data_[pos_] == '-') ++pos_;
    const size_t lead = pos_;
    const size_t n = digits();
    if (n == 0 || (n > 1 && data_[lead] == '0')) Fail("invalid number");
    integer = true;
    if (pos_ < end_ && data_[pos_] == '.') {
      ++pos_;
      integer = false;
      if (digits() == 0) Fail("invalid number");
    }
    if (pos_ < end_ && (data_[pos_] == 'e' || data_[pos_] == 'E')) {
      ++pos_;
      integer = false;
      if (pos_ < end_ && (data_[pos_] == '+' || data_[pos_] == '-')) ++pos_;
      if (digits() == 0) Fail("invalid number");
    }
    return std::string_view(data_ + start, pos_ - start);
  }

  static double Double(std::string_view token) {
    if (token == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (token == "Infinity") return std::numeric_limits<double>::infinity();
    if (token == "-Infinity") return -std::numeric_limits<double>::infinity();
    double v = 0;
    const auto result = std::from_chars(token.data(), token.data() + token.size(), v);
    if (result.ec == std::errc()) return v;
    // Beyond the double range: as Python's float() (inf, or 0 with the sign).
    const std::string text(token);
    return PyOS_string_to_double(text.c_str(), nullptr, nullptr);
  }

  static py::object Integer(std::string_view token) {
    int64_t v = 0;
    const auto result = std::from_chars(token.data(), token.data() + token.size(), v);
    if (result.ec == std::errc()) return py::int_(v);
    const std::string text(token);
    PyObject* big = PyLong_FromString(text.c_str(), nullptr, 10);
    if (big == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(big);
  }

  py::str String() {
    const std::string bytes = StringBytes();
    PyObject* s = PyUnicode_DecodeUTF8(bytes.data(), static_cast<Py_ssize_t>(bytes.size()),
                                       "strict");
    if (s == nullptr) {
      PyErr_Clear();
      Fail("string is not valid UTF-8");
    }
    return py::reinterpret_steal<py::str>(s);
  }

  // A string's UTF-8 bytes, escapes resolved (just after its opening quote is consumed).
  std::string StringBytes() {
    Expect('"');
    std::string out;
    while (true) {
      if (pos_ >= end_) Fail("unterminated string");
      const auto c = static_cast<unsigned char>(data_[pos_++]);
      if (c == '"') return out;
      if (c < 0x20) Fail("control character in a string");
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        continue;
      }
      if (pos_ >= end_) Fail("unterminated string");
      const char e = data_[pos_++];
      switch (e) {
        case '"': case '\\': case '/': out.push_back(e); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': AppendUtf8(out, CodePoint()); break;
        default: Fail("invalid escape");
      }
    }
  }

  uint32_t Hex4() {
    if (end_ - pos_ < 4) Fail("invalid \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = data_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= h - '0';
      else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
      else Fail("invalid \\u escape");
    }
    return v;
  }

  // The code point of a \u escape (after "\u"); a surrogate pair is read whole.
  uint32_t CodePoint() {
    const uint32_t high = Hex4();
    if (high < 0xD800 || high > 0xDFFF) return high;
    if (high > 0xDBFF || end_ - pos_ < 6 || data_[pos_] != '\\' || data_[pos_ + 1] != 'u') {
      Fail("lone surrogate");
    }
    pos_ += 2;
    const uint32_t low = Hex4();
    if (low < 0xDC00 || low > 0xDFFF) Fail("lone surrogate");
    return 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
  }

  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  py::object Array(int depth) {
    py::list out;
    if (Peek() == ']') {
      ++pos_;
      return out;
    }
    while (true) {
      out.append(Value(depth));
      if (Peek() == ']') break;
      Expect(',');
    }
    ++pos_;
    return out;
  }

  py::object Object(int depth) {
    py::dict out;
    if (Peek() == '}') {
      ++pos_;
      return out;
    }
    while (true) {
      py::str key = String();
      Expect(':');
      out[key] = Member(key, depth);
      if (Peek() == '}') break;
      Expect(',');
    }
    ++pos_;
    return out;
  }

  // The value of object member `key`: by columns when it is the requested key's array.
  py::object Member(const py::str& key, int depth) {
    if (columns_key_.empty() || Peek() != '[' || depth >= kMaxDepth - 2 ||
        std::string(key) != columns_key_) {
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
    bool numeric = false;  // arrays of numbers (else any values, as a list)
    int kind = 0;          // their numbers so far: 0 none, 1 integers, 2 other numbers
    std::vector<int64_t> ints;
    std::vector<double> doubles;
    std::vector<int64_t> lengths;
    py::list values;
    int64_t stamp = -1;  // last object holding it
  };

  // The column form (formats/columns.h) of an array of like objects,
  // just after its '['; None, pos_ anywhere, otherwise.
  py::object Columns(int depth) {
    ColumnSet<Column> columns;
    int64_t n = 0;
    if (Peek() == ']') return py::none();
    for (;; ++n) {
      if (Peek() != '{') return py::none();
      ++pos_;
      size_t members = 0;
      if (Peek() != '}') {
        while (true) {
          const std::string key = StringBytes();
          Expect(':');
          Column* column = columns.Find(key, n, members);
          if (column == nullptr) return py::none();
          ++members;
          if (!ColumnValue(*column, n == 0, depth + 1)) return py::none();
          if (Peek() == '}') break;
          Expect(',');
        }
      }
      ++pos_;
      if (members != columns.size()) return py::none();
      if (Peek() == ']') break;
      Expect(',');
    }
    ++pos_;
    return columns.Result(
        n + 1,
        [](const Column& c) {
          return c.kind == 2
              ? py::array(py::array_t<double>(static_cast<py::ssize_t>(c.doubles.size()),
                                              c.doubles.data()))
              : py::array(py::array_t<int64_t>(static_cast<py::ssize_t>(c.ints.size()),
                                               c.ints.data()));
        },
        [this](const std::string& what) { Fail(what); });
  }

  // Appends one object's value to `column` (its kind is set by the first object); false
  // when the value is of another kind than the column's.
  bool ColumnValue(Column& column, bool first, int depth) {
    const bool array = Peek() == '[';
    if (first) column.numeric = array;
    if (!column.numeric) {
      if (array && !first) return false;
      column.values.append(Value(depth));
      return true;
    }
    if (!array) return false;
    ++pos_;
    int64_t count = 0;
    if (Peek() != ']') {
      while (true) {
        const char c = Peek();
        if (c != '-' && c != 'N' && c != 'I' && (c < '0' || c > '9')) return false;
        bool integer = false;
        const std::string_view token = NumberToken(integer);
        const int kind = integer ? 1 : 2;
        if (column.kind != 0 && column.kind != kind) return false;
        column.kind = kind;
        if (integer) {
          int64_t v = 0;
          const auto result = std::from_chars(token.data(), token.data() + token.size(), v);
          if (result.ec != std::errc()) return false;
          column.ints.push_back(v);
        } else {
          column.doubles.push_back(Double(token));
        }
        ++count;
        if (Peek() == ']') break;
        Expect(',');
      }
    }
    ++pos_;
    column.lengths.push_back(count);
    return true;
  }

  const char* data_;
  size_t end_;
  size_t pos_ = 0;
  std::string columns_key_;  // the member whose array of objects is decoded by columns
};

}  // namespace

void BindJson(py::module_& m) {
  m.def(
      "json_loads",
      [](py::buffer data, const std::string& columns) {
        const py::buffer_info info = data.request();
        if (info.ndim > 1 || info.itemsize != 1) {
          throw std::invalid_argument("JSON: expected a bytes-like object");
        }
        JsonReader reader(static_cast<const char*>(info.ptr), static_cast<size_t>(info.size),
                          columns);
        return reader.Document();
      },
      py::arg("data"), py::arg("columns") = "",
      "Parse one UTF-8 JSON document as json.loads does (ValueError on anything it does not "
      "read exactly so). An array of like objects under a member named `columns` becomes "
      "{'n_items': n, 'arrays': {key: (int64 or float64 values [total], lengths int64 [n])}, "
      "'lists': {key: [n values]}}.");
}

}  // namespace treelens
