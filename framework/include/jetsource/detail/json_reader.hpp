// detail: a cereal input archive over JSON parsed in memory. cereal's JSONInputArchive reads
// through rapidjson 1.1's IStreamWrapper, which costs two std::istream calls per character
// (73% of decode time, measured); this reader parses the bytes directly and walks the document
// with the same rules: a named value is found by name within its object (in any order), an
// unnamed one is the next in sequence. Type mismatches and missing names throw cereal::Exception.
// A commit body is parsed in place, in a copy kept within the reader, as is the document:
// rapidjson's defaults allocate a 64 KiB pool chunk and a parse stack per document and copy
// strings one character at a time, which cost more than the rest of the parse.
#pragma once

#include <cereal/cereal.hpp>

#include <rapidjson/document.h>

#include <boost/container/small_vector.hpp>

#include <locale.h>  // newlocale, strtod_l: a number out of double's range
#include <stdlib.h>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace jetsource::detail {

class json_reader : public cereal::InputArchive<json_reader>, public cereal::traits::TextArchive {
 public:
  /// Objects and arrays nested deeper than this make the text malformed (docs/wire-format.md
  /// §6): the parser recurses once per level, and a thread's stack is not unbounded.
  static constexpr unsigned max_depth = 512;

  explicit json_reader(std::string_view json) : cereal::InputArchive<json_reader>(this) {
    // Parsed in place, in a copy: strings are then not copied character by character. With
    // SSE2, rapidjson reads the text in aligned 16-byte blocks: 16 zero bytes follow it.
    char* text = text_buf_;
    if (json.size() + simd_pad > sizeof text_buf_) {
      text_heap_ = std::make_unique<char[]>(json.size() + simd_pad);
      text = text_heap_.get();
    }
    if (!json.empty()) std::memcpy(text, json.data(), json.size());  // data() may be null
    std::memset(text + json.size(), 0, simd_pad);
    exact_numbers parse{text, &stack_pool_};
    doc_.Populate(parse);
    if (!parse.ok) throw cereal::Exception("malformed JSON");
    if (!doc_.IsObject() && !doc_.IsArray()) throw cereal::Exception("JSON root is not an object");
    stack_.push_back({&doc_, 0});
  }

  json_reader(const json_reader&) = delete;  // the document lives in the reader's own buffers
  json_reader& operator=(const json_reader&) = delete;

  void setNextName(const char* name) { next_name_ = name; }

  /// Enters the next value (an object or array) as the current level.
  void startNode() {
    const value& v = next();
    if (!v.IsObject() && !v.IsArray()) throw cereal::Exception("expected an object or array");
    stack_.push_back({&v, 0});
  }
  void finishNode() { stack_.pop_back(); }

  /// True when the current level is an object with a member named `name` (optional members).
  bool has_member(const char* name) const {
    const value& v = *stack_.back().node;
    return v.IsObject() && v.FindMember(name) != v.MemberEnd();
  }

  /// The number of elements of the current array.
  void loadSize(cereal::size_type& size) {
    const value& v = *stack_.back().node;
    if (!v.IsArray()) throw cereal::Exception("expected an array");
    size = v.Size();
  }

  void loadValue(bool& b) {
    const value& v = next();
    if (!v.IsBool()) throw cereal::Exception("expected a boolean");
    b = v.GetBool();
  }
  void loadValue(std::string& s) {
    const value& v = next();
    if (!v.IsString()) throw cereal::Exception("expected a string");
    s.assign(v.GetString(), v.GetStringLength());
  }
  void loadValue(std::nullptr_t&) {
    if (!next().IsNull()) throw cereal::Exception("expected null");
  }
  template <class T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) void loadValue(T& out) {
    const value& v = next();
    if constexpr (std::is_floating_point_v<T>) {
      if (!v.IsNumber()) throw cereal::Exception("expected a number");
      out = static_cast<T>(v.GetDouble());
    } else if constexpr (std::is_signed_v<T>) {
      if (!v.IsInt64()) throw cereal::Exception("expected an integer");
      auto x = v.GetInt64();
      if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max())
        throw cereal::Exception("integer out of range");
      out = static_cast<T>(x);
    } else {
      if (!v.IsUint64()) throw cereal::Exception("expected an unsigned integer");
      auto x = v.GetUint64();
      if (x > std::numeric_limits<T>::max()) throw cereal::Exception("integer out of range");
      out = static_cast<T>(x);
    }
  }

 private:
  using value = rapidjson::Value;
  struct level {
    const value* node;
    rapidjson::SizeType index;  // next member / element in sequence
  };

  // The value a load refers to: by name (searched in the current object) or the next one.
  const value& next() {
    level& l = stack_.back();
    const char* name = next_name_;
    next_name_ = nullptr;
    if (l.node->IsArray()) {
      if (l.index >= l.node->Size()) throw cereal::Exception("no more array elements");
      return (*l.node)[l.index++];
    }
    auto begin = l.node->MemberBegin();
    auto count = l.node->MemberCount();
    if (name == nullptr) {
      if (l.index >= count) throw cereal::Exception("no more object members");
      return begin[l.index++].value;
    }
    if (l.index < count && std::string_view(begin[l.index].name.GetString()) == name)
      return begin[l.index++].value;
    for (rapidjson::SizeType i = 0; i < count; ++i) {
      if (std::string_view(begin[i].name.GetString()) == name) {
        l.index = i + 1;
        return begin[i].value;
      }
    }
    throw cereal::Exception(std::string("no member named '") + name + "'");
  }

  // Parses `text` in place into a document. Two defects of rapidjson 1.1.0 that a stored body
  // could trigger, found by tests/fuzz/commit_decoder.cpp:
  // - its recursive parser takes stack per nesting level, and a body of 1 MB of '[' (a message
  //   any writer can put on the stream) overflowed the stack of whatever loaded or projected it:
  //   nesting deeper than max_depth now ends the parse (an error). Not the iterative parser:
  //   it costs 16% more instructions per commit decoded (measured with callgrind);
  // - its full-precision conversion (the flag cereal sets) is undefined behaviour for a number
  //   whose digits are all zeros and whose exponent is large, e.g. 0e111 (valid JSON):
  //   __builtin_clzll(0), then a shift by a negative count (fixed upstream after 1.1.0).
  //   Numbers are converted here by std::from_chars, exact as before (and no slower).
  // NaN and Infinity are accepted as cereal's default flags accept them.
  struct exact_numbers {
    static constexpr unsigned flags = rapidjson::kParseInsituFlag |
                                      rapidjson::kParseNumbersAsStringsFlag |
                                      rapidjson::kParseNanAndInfFlag;
    char* text;
    rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator>* stack;
    bool ok = false;

    template <class Document>
    struct handler : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, handler<Document>> {
      Document& d;
      unsigned depth = 0;
      explicit handler(Document& doc) : d(doc) {}
      bool Null() { return d.Null(); }
      bool Bool(bool b) { return d.Bool(b); }
      bool Int(int i) { return d.Int(i); }
      bool Uint(unsigned u) { return d.Uint(u); }
      bool Int64(std::int64_t i) { return d.Int64(i); }
      bool Uint64(std::uint64_t u) { return d.Uint64(u); }
      bool Double(double x) { return d.Double(x); }
      bool String(const char* s, rapidjson::SizeType n, bool copy) { return d.String(s, n, copy); }
      bool StartObject() { return ++depth <= max_depth && d.StartObject(); }
      bool Key(const char* s, rapidjson::SizeType n, bool copy) { return d.Key(s, n, copy); }
      bool EndObject(rapidjson::SizeType n) { return --depth, d.EndObject(n); }
      bool StartArray() { return ++depth <= max_depth && d.StartArray(); }
      bool EndArray(rapidjson::SizeType n) { return --depth, d.EndArray(n); }
      // A number's text (JSON syntax already checked; not NUL-terminated). An integer that
      // fits 64 bits stays an integer, anything else is a double, as rapidjson decides.
      bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
        const char* end = s + n;
        if (std::string_view(s, n).find_first_of(".eEIN") == std::string_view::npos) {
          if (*s == '-') {
            std::int64_t i = 0;
            if (auto r = std::from_chars(s, end, i); r.ec == std::errc{} && r.ptr == end)
              return d.Int64(i);
          } else {
            std::uint64_t u = 0;
            if (auto r = std::from_chars(s, end, u); r.ec == std::errc{} && r.ptr == end)
              return d.Uint64(u);
          }
        }
        double x = 0;
        auto r = std::from_chars(s, end, x);
        if (r.ec == std::errc::result_out_of_range) {  // too big (an error) or too small (0)
          static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", locale_t{});  // '.'
          x = strtod_l(std::string(s, n).c_str(), nullptr, c_locale);
          if (std::isinf(x)) return false;
        } else if (r.ec != std::errc{} || r.ptr != end) {
          return false;
        }
        return d.Double(x);
      }
    };

    template <class Document>
    bool operator()(Document& d) {
      rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>,
                               rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator>>
          reader(stack);
      rapidjson::InsituStringStream is(text);
      handler<Document> h(d);
      ok = !reader.Parse<flags>(is, h).IsError();
      return ok;
    }
  };

  // Values and copied strings go to values_buf_, the parser's stack to stack_buf_; a document
  // that outgrows them spills into 64 KiB heap chunks.
  using pool = rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator>;
  using document = rapidjson::GenericDocument<rapidjson::UTF8<>, pool, pool>;
  static constexpr std::size_t parse_stack_bytes = 512;
  static constexpr std::size_t simd_pad = 16;
  alignas(16) char text_buf_[1024];
  std::unique_ptr<char[]> text_heap_;  // a text too long for text_buf_
  alignas(std::max_align_t) char values_buf_[2048];
  alignas(std::max_align_t) char stack_buf_[parse_stack_bytes * 2];
  pool values_{values_buf_, sizeof values_buf_};
  pool stack_pool_{stack_buf_, sizeof stack_buf_};
  document doc_{&values_, parse_stack_bytes, &stack_pool_};
  boost::container::small_vector<level, 8> stack_;
  const char* next_name_ = nullptr;
};

// cereal glue: names, sizes and plain values load directly; anything else is a node.
template <class T>
concept json_node = !std::is_arithmetic_v<T> &&
                    !cereal::traits::has_minimal_base_class_serialization<
                        T, cereal::traits::has_minimal_input_serialization, json_reader>::value &&
                    !cereal::traits::has_minimal_input_serialization<T, json_reader>::value;
template <class T>
void prologue(json_reader&, const cereal::NameValuePair<T>&) {}
template <class T>
void epilogue(json_reader&, const cereal::NameValuePair<T>&) {}
template <class T>
void prologue(json_reader&, const cereal::SizeTag<T>&) {}
template <class T>
void epilogue(json_reader&, const cereal::SizeTag<T>&) {}
template <class T>
requires(std::is_arithmetic_v<T>) void prologue(json_reader&, const T&) {}
template <class T>
requires(std::is_arithmetic_v<T>) void epilogue(json_reader&, const T&) {}
inline void prologue(json_reader&, const std::nullptr_t&) {}
inline void epilogue(json_reader&, const std::nullptr_t&) {}
template <class C, class A>
void prologue(json_reader&, const std::basic_string<char, C, A>&) {}
template <class C, class A>
void epilogue(json_reader&, const std::basic_string<char, C, A>&) {}
template <json_node T>
void prologue(json_reader& ar, const T&) {
  ar.startNode();
}
template <json_node T>
void epilogue(json_reader& ar, const T&) {
  ar.finishNode();
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(json_reader& ar, cereal::NameValuePair<T>& t) {
  ar.setNextName(t.name);
  ar(t.value);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(json_reader& ar, cereal::SizeTag<T>& st) {
  ar.loadSize(st.size);
}
template <class T>
requires(std::is_arithmetic_v<T>) void CEREAL_LOAD_FUNCTION_NAME(json_reader& ar, T& t) {
  ar.loadValue(t);
}
inline void CEREAL_LOAD_FUNCTION_NAME(json_reader& ar, std::nullptr_t& t) {
  ar.loadValue(t);
}
template <class C, class A>
void CEREAL_LOAD_FUNCTION_NAME(json_reader& ar, std::basic_string<char, C, A>& s) {
  if constexpr (std::is_same_v<std::basic_string<char, C, A>, std::string>) {
    ar.loadValue(s);  // straight into the field: no temporary on the decode path
  } else {
    std::string tmp;
    ar.loadValue(tmp);
    s.assign(tmp.begin(), tmp.end());
  }
}

}  // namespace jetsource::detail

CEREAL_REGISTER_ARCHIVE(jetsource::detail::json_reader)
