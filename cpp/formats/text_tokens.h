// Whitespace-separated number tokens of text model formats (LightGBM's `key=v1 v2 ...`
// lines), read with std::from_chars: decimal text is rounded exactly as Python's float()
// rounds it, and a token is a number only when all of it is.
#pragma once

#include <charconv>
#include <string_view>

namespace treelens {

inline bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Calls fn(token) for each whitespace-separated token of text.
template <typename Fn>
void ForEachToken(std::string_view text, Fn&& fn) {
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && !IsSpace(text[i])) ++i;
    if (i > start) fn(text.substr(start, i - start));
  }
}

// Whether all of `token` is one number of type T (written to value).
template <typename T>
bool ParseNumber(std::string_view token, T& value) {
  const char* end = token.data() + token.size();
  const auto result = std::from_chars(token.data(), end, value);
  return result.ec == std::errc() && result.ptr == end;
}

}  // namespace treelens
