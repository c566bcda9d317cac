#include "mime_downgrade.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <utility>

#include "mail/headers.h"

namespace wsmtp::common::mail {
namespace {

// Lines longer than this are handled in pieces: no line can make us buffer
// more, and no MIME boundary line (RFC 2046 §5.1.1: at most 70 characters plus
// "--" twice and some padding) comes close.
constexpr std::size_t kMaxPiece = 4096;
constexpr std::size_t kMaxBoundary = 200;
constexpr std::size_t kQpLineLimit = 75;  // plus the '=' of a soft break: 76 (RFC 2045 §6.7 rule 5)

bool is_8bit(char c) { return static_cast<unsigned char>(c) >= 0x80; }

// Removes RFC 5322 comments ("(...)", nested) outside quoted strings.
std::string strip_comments(std::string_view value) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '\\' && i + 1 < value.size() && (quoted || depth > 0)) {
      if (depth == 0) out.append(value.substr(i, 2));
      ++i;
    } else if (depth == 0 && c == '"') {
      quoted = !quoted;
      out += c;
    } else if (!quoted && c == '(') {
      ++depth;
    } else if (!quoted && c == ')' && depth > 0) {
      --depth;
    } else if (depth == 0) {
      out += c;
    }
  }
  return out;
}

// The position of the next ';' at or after `from` outside quotes, or npos.
std::size_t next_separator(std::string_view v, std::size_t from) {
  bool quoted = false;
  for (std::size_t i = from; i < v.size(); ++i) {
    if (v[i] == '\\' && quoted)
      ++i;
    else if (v[i] == '"')
      quoted = !quoted;
    else if (v[i] == ';' && !quoted)
      return i;
  }
  return std::string_view::npos;
}

std::string unquote(std::string_view v) {
  v = trim(v);
  if (v.empty() || v.front() != '"') return std::string(v);
  std::string out;
  for (std::size_t i = 1; i < v.size() && v[i] != '"'; ++i) {
    if (v[i] == '\\' && i + 1 < v.size()) ++i;
    out += v[i];
  }
  return out;
}

struct ContentType {
  std::string type;
  std::string subtype;
  std::string boundary;
};

// RFC 2045 §5.1: type "/" subtype *(";" parameter); only the boundary matters here.
ContentType parse_content_type(std::string_view value) {
  const std::string v = strip_comments(value);
  ContentType ct;
  auto end = next_separator(v, 0);
  auto media = trim(std::string_view(v).substr(0, end));
  if (auto slash = media.find('/'); slash != std::string_view::npos) {
    ct.type = to_lower_ascii(trim(media.substr(0, slash)));
    ct.subtype = to_lower_ascii(trim(media.substr(slash + 1)));
  }
  while (end != std::string_view::npos) {
    auto start = end + 1;
    end = next_separator(v, start);
    auto param = std::string_view(v).substr(start, end == std::string_view::npos ? end : end - start);
    auto eq = param.find('=');
    if (eq != std::string_view::npos && to_lower_ascii(trim(param.substr(0, eq))) == "boundary")
      ct.boundary = unquote(param.substr(eq + 1));
  }
  return ct;
}

// identity: 7bit, 8bit, binary or none (the body is its own bytes); encoded:
// quoted-printable or base64; other: an unknown x-token.
enum class Cte { identity, encoded, other };

Cte classify(const std::optional<std::string_view>& value) {
  if (!value) return Cte::identity;
  auto v = to_lower_ascii(trim(strip_comments(*value)));
  if (v.empty() || v == "7bit" || v == "8bit" || v == "binary") return Cte::identity;
  if (v == "quoted-printable" || v == "base64") return Cte::encoded;
  return Cte::other;
}

enum class BoundaryMatch { none, delimiter, close };

// RFC 2046 §5.1.1: "--" boundary, "--" more for the close delimiter, then only
// transport padding (whitespace) up to the line end.
BoundaryMatch match_boundary(std::string_view line, std::string_view boundary) {
  if (line.size() < boundary.size() + 2 || line.substr(2, boundary.size()) != boundary) return BoundaryMatch::none;
  auto rest = line.substr(boundary.size() + 2);
  auto match = BoundaryMatch::delimiter;
  if (rest.substr(0, 2) == "--") {
    match = BoundaryMatch::close;
    rest.remove_prefix(2);
  }
  for (char c : rest)
    if (c != ' ' && c != '\t' && c != '\r') return BoundaryMatch::none;
  return match;
}

struct HeaderEdit {
  std::string_view encoding;      // the new Content-Transfer-Encoding value
  bool add_mime_version = false;  // the entity is a message: MIME-Version needed for its Content-* fields
  bool add_content_type = false;  // no Content-Type: say the 8-bit text's charset is unknown (RFC 1428)
};

// The header section with its Content-Transfer-Encoding field replaced (the
// first one in place, later ones dropped, or added at the end) and missing
// MIME fields added; every other field stays byte for byte.
std::string rewrite_header(std::string_view raw, const HeaderEdit& edit) {
  const std::string cte = "Content-Transfer-Encoding: " + std::string(edit.encoding) + "\r\n";
  std::string out;
  bool replaced = false, has_version = false, has_type = false;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    // One field: its first line and every continuation line (leading whitespace).
    std::size_t end = pos;
    do {
      auto nl = raw.find('\n', end);
      end = nl == std::string_view::npos ? raw.size() : nl + 1;
    } while (end < raw.size() && (raw[end] == ' ' || raw[end] == '\t'));
    auto field = raw.substr(pos, end - pos);
    pos = end;
    auto name = trim(field.substr(0, std::min(field.find(':'), field.size())));
    if (iequals(name, "Content-Transfer-Encoding")) {
      if (!std::exchange(replaced, true)) out += cte;
      continue;
    }
    has_version = has_version || iequals(name, "MIME-Version");
    has_type = has_type || iequals(name, "Content-Type");
    out.append(field);
  }
  if (!replaced) out += cte;
  if (edit.add_mime_version && !has_version) out += "MIME-Version: 1.0\r\n";
  if (edit.add_content_type && !has_type) out += "Content-Type: text/plain; charset=unknown-8bit\r\n";
  return out;
}

}  // namespace

// The encoder's state machine, writing through `emit` (a string, or a counter
// when only the size is wanted).
template <class Emit>
void qp_encode(std::size_t& column, bool& continuation, std::string_view piece, bool line_end, Emit&& emit) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (std::size_t i = 0; i < piece.size(); ++i) {
    const auto c = static_cast<unsigned char>(piece[i]);
    const bool last = i + 1 == piece.size();
    const bool plain = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last);
    for (;;) {
      // After a soft break a leading '-' could begin "--boundary": encode it.
      const bool literal = plain && !(c == '-' && column == 0 && continuation);
      const std::size_t width = literal ? 1 : 3;
      if (column + width > kQpLineLimit) {
        emit("=\r\n", 3);
        column = 0;
        continuation = true;
        continue;  // the character is judged again at the start of the new line
      }
      if (literal) {
        const char ch = static_cast<char>(c);
        emit(&ch, 1);
      } else {
        const char code[3] = {'=', kHex[c >> 4], kHex[c & 15]};
        emit(code, 3);
      }
      column += width;
      break;
    }
  }
  if (line_end) {
    emit("\r\n", 2);
    column = 0;
    continuation = false;
  }
}

void QpEncoder::encode(std::string_view piece, bool line_end, std::string& out) {
  qp_encode(column_, continuation_, piece, line_end,
            [&out](const char* bytes, std::size_t n) { out.append(bytes, n); });
}

std::size_t QpEncoder::measure(std::string_view piece, bool line_end) {
  std::size_t size = 0;
  qp_encode(column_, continuation_, piece, line_end, [&size](const char*, std::size_t n) { size += n; });
  return size;
}

// The line-driven MIME state machine both passes share. Each entity is a frame
// on a stack: its header section is collected, then its kind decides what its
// body is (a leaf's content, a multipart's preamble, parts and epilogue, or an
// encapsulated message's own entity). Entities are numbered in order of
// appearance, so the scan and the encode of the same bytes agree on numbers.
class MimeWalker {
 public:
  MimeWalker(const DowngradeLimits& limits, const DowngradePlan* plan) : limits_(limits), plan_(plan) {
    push_entity(false, true);
  }

  void feed(std::string_view chunk, std::string* out);
  void finish(std::string* out);
  DowngradePlan take_result() { return std::move(result_); }

 private:
  enum class Kind { leaf, multipart, message };
  enum class Phase { headers, body, preamble, epilogue };
  struct Frame {
    std::size_t index = 0;
    Kind kind = Kind::leaf;
    Phase phase = Phase::headers;
    bool message_top = false;  // the entity of a whole message (top level or encapsulated)
    bool in_digest = false;    // multipart/digest parts default to message/rfc822 (RFC 2046 §5.1.5)
    bool digest = false;
    bool opaque = false;  // beyond the limits: passed on unparsed, cannot be converted
    bool declared_8bit = false;
    bool convert = false;
    Cte cte = Cte::identity;
    std::string boundary;
    std::string header;
    std::int64_t header_delta = 0;  // scan: the size change of rewriting this header
    std::uint64_t raw_bytes = 0;    // scan: body size as is
    std::uint64_t qp_bytes = 0;     // scan: body size as quoted-printable
    bool body_8bit = false;
    QpEncoder qp;
  };

  bool scanning() const { return plan_ == nullptr; }
  void emit(std::string* out, std::string_view bytes) const {
    if (out) out->append(bytes);
  }
  void fail(const char* problem, bool in_header = false) {
    result_.header_8bit = result_.header_8bit || in_header;
    if (result_.unconvertible) return;
    result_.unconvertible = true;
    result_.problem = problem;
  }
  void emit_line(std::string* out, bool complete);
  void piece(std::string_view content, std::string_view eol, std::string* out);
  bool boundary_line(std::string_view content, std::string_view eol, std::string* out);
  void header_piece(Frame& f, std::string_view content, std::string_view eol, bool starts, std::string* out);
  void end_headers(Frame& f, std::string_view blank, std::string* out);
  void body_piece(Frame& f, std::string_view content, std::string_view eol, std::string* out);
  void push_entity(bool in_digest, bool message_top);
  void pop_frame(std::string* out);

  DowngradeLimits limits_;
  const DowngradePlan* plan_;  // encode pass; nullptr while scanning
  DowngradePlan result_;       // scan pass
  std::vector<Frame> stack_;
  std::string line_;  // the current line, up to kMaxPiece bytes
  bool at_line_start_ = true;
  std::size_t entities_ = 0;
  std::int64_t composite_delta_ = 0;  // scan: relabelling 8bit/binary composites as 7bit
  std::int64_t size_delta_ = 0;       // scan: what converting the planned parts adds
};

void MimeWalker::feed(std::string_view chunk, std::string* out) {
  result_.input_size += chunk.size();
  if (scanning() && !result_.has_8bit) result_.has_8bit = !is_ascii(chunk);
  while (!chunk.empty()) {
    auto nl = chunk.find('\n');
    std::size_t upto = nl == std::string_view::npos ? chunk.size() : nl + 1;
    std::size_t room = kMaxPiece - line_.size();
    if (upto > room) {
      line_.append(chunk.substr(0, room));
      chunk.remove_prefix(room);
      emit_line(out, false);
      continue;
    }
    line_.append(chunk.substr(0, upto));
    chunk.remove_prefix(upto);
    if (nl != std::string_view::npos) emit_line(out, true);
  }
}

// Hands the buffered line on: whole (with its line end) or, for an overlong
// line, the piece so far. A CR that ends a piece stays for the next one, so a
// CRLF split between pieces is still seen as one line end.
void MimeWalker::emit_line(std::string* out, bool complete) {
  std::string_view text = line_;
  std::string_view eol;
  std::string held;
  if (complete) {
    eol =
        text.size() >= 2 && text[text.size() - 2] == '\r' ? text.substr(text.size() - 2) : text.substr(text.size() - 1);
    text.remove_suffix(eol.size());
  } else if (text.size() > 1 && text.back() == '\r') {
    held = "\r";
    text.remove_suffix(1);
  }
  piece(text, eol, out);
  line_ = std::move(held);
}

void MimeWalker::piece(std::string_view content, std::string_view eol, std::string* out) {
  const bool starts = std::exchange(at_line_start_, !eol.empty());
  if (starts && !eol.empty() && content.substr(0, 2) == "--" && boundary_line(content, eol, out)) return;
  auto& f = stack_.back();
  switch (f.phase) {
    case Phase::headers:
      header_piece(f, content, eol, starts, out);
      break;
    case Phase::body:
      body_piece(f, content, eol, out);
      break;
    case Phase::preamble:
    case Phase::epilogue:
      // Text MIME readers ignore (RFC 2046 §5.1.1) and no encoding can be
      // declared for: 8-bit bytes there become '?'.
      if (out) {
        for (char c : content) *out += is_8bit(c) ? '?' : c;
        out->append(eol);
      }
      break;
  }
}

// A delimiter of an enclosing multipart ends every entity inside it, even ones
// left unterminated (malformed input).
bool MimeWalker::boundary_line(std::string_view content, std::string_view eol, std::string* out) {
  for (std::size_t k = stack_.size(); k-- > 0;) {
    const auto& f = stack_[k];
    if (f.kind != Kind::multipart || f.phase == Phase::epilogue || f.phase == Phase::headers) continue;
    auto match = match_boundary(content, f.boundary);
    if (match == BoundaryMatch::none) continue;
    while (stack_.size() > k + 1) pop_frame(out);
    emit(out, content);
    emit(out, eol);
    auto& parent = stack_.back();
    if (match == BoundaryMatch::close) {
      parent.phase = Phase::epilogue;
    } else {
      parent.phase = Phase::body;
      push_entity(parent.digest, false);
    }
    return true;
  }
  return false;
}

void MimeWalker::header_piece(Frame& f, std::string_view content, std::string_view eol, bool starts, std::string* out) {
  if (starts && !eol.empty() && content.empty()) return end_headers(f, eol, out);
  if (f.header.size() + content.size() + eol.size() <= limits_.max_header_bytes) {
    f.header.append(content).append(eol);
    return;
  }
  // An endless header section: pass it on as it is, with the rest of the entity.
  if (scanning() && !is_ascii(f.header)) fail("8-bit characters in an oversized header section", true);
  emit(out, f.header);
  f.header.clear();
  f.opaque = true;
  f.phase = Phase::body;
  body_piece(f, content, eol, out);
}

void MimeWalker::end_headers(Frame& f, std::string_view blank, std::string* out) {
  auto block = HeaderBlock::parse(f.header, {.max_bytes = limits_.max_header_bytes + 2, .max_fields = 10000});
  auto type_field = block.first("Content-Type");
  ContentType ct = type_field ? parse_content_type(*type_field) : ContentType{};
  if (!type_field && f.in_digest) ct = {"message", "rfc822", ""};
  auto cte_field = block.first("Content-Transfer-Encoding");
  f.cte = classify(cte_field);
  if (cte_field) {
    auto v = to_lower_ascii(trim(strip_comments(*cte_field)));
    f.declared_8bit = v == "8bit" || v == "binary";
  }
  const bool encapsulated = ct.type == "message" && (ct.subtype == "rfc822" || ct.subtype == "news");
  if (stack_.size() >= limits_.max_depth) {
    // Too deep to walk; a composite's body cannot be re-encoded as a leaf's
    // (RFC 2045 §6.4), so it is passed on as it is.
    f.opaque = ct.type == "multipart" || encapsulated;
  } else if (ct.type == "multipart" && !ct.boundary.empty() && ct.boundary.size() <= kMaxBoundary &&
             f.cte != Cte::encoded) {
    f.kind = Kind::multipart;
    f.boundary = ct.boundary;
    f.digest = ct.subtype == "digest";
  } else if (encapsulated && f.cte != Cte::encoded) {
    f.kind = Kind::message;
  }
  const HeaderEdit leaf_edit{"quoted-printable", f.message_top, true};
  if (scanning()) {
    if (!is_ascii(f.header)) fail("8-bit characters in header fields (that needs SMTPUTF8)", true);
    if (f.kind == Kind::leaf)
      f.header_delta = static_cast<std::int64_t>(rewrite_header(f.header, leaf_edit).size()) -
                       static_cast<std::int64_t>(f.header.size());
    else if (f.declared_8bit)
      composite_delta_ += static_cast<std::int64_t>(rewrite_header(f.header, {"7bit"}).size()) -
                          static_cast<std::int64_t>(f.header.size());
  } else if (f.kind == Kind::leaf) {
    f.convert = std::binary_search(plan_->convert.begin(), plan_->convert.end(), f.index);
    emit(out, f.convert ? rewrite_header(f.header, leaf_edit) : f.header);
  } else {
    // A composite's encoding must match what it now contains (RFC 2045 §6.4).
    emit(out, f.declared_8bit && !plan_->convert.empty() ? rewrite_header(f.header, {"7bit"}) : f.header);
  }
  emit(out, blank);
  f.header.clear();
  f.header.shrink_to_fit();
  f.phase = f.kind == Kind::multipart ? Phase::preamble : Phase::body;
  if (f.kind == Kind::message) push_entity(false, true);
}

void MimeWalker::body_piece(Frame& f, std::string_view content, std::string_view eol, std::string* out) {
  if (scanning()) {
    f.raw_bytes += content.size() + eol.size();
    f.body_8bit = f.body_8bit || !is_ascii(content);
    if (!f.opaque && f.cte == Cte::identity) f.qp_bytes += f.qp.measure(content, !eol.empty());
    return;
  }
  if (f.convert) {
    f.qp.encode(content, !eol.empty(), *out);
  } else {
    emit(out, content);
    emit(out, eol);
  }
}

void MimeWalker::push_entity(bool in_digest, bool message_top) {
  Frame f;
  f.index = entities_++;
  f.in_digest = in_digest;
  f.message_top = message_top;
  if (entities_ > limits_.max_entities || stack_.size() >= limits_.max_depth) {
    f.opaque = true;
    f.phase = Phase::body;
  }
  stack_.push_back(std::move(f));
}

void MimeWalker::pop_frame(std::string* out) {
  Frame f = std::move(stack_.back());
  stack_.pop_back();
  if (f.phase == Phase::headers) {
    // Cut off before its header section ended: whatever came is passed on.
    if (scanning() && !is_ascii(f.header)) fail("8-bit characters in header fields (that needs SMTPUTF8)", true);
    emit(out, f.header);
    return;
  }
  if (!scanning() || f.kind != Kind::leaf || !f.body_8bit) return;
  if (f.opaque)
    fail("8-bit content in MIME parts beyond the nesting or count limits");
  else if (f.cte != Cte::identity)
    fail("8-bit bytes in a part declared as quoted-printable, base64 or an unknown encoding");
  else {
    result_.convert.push_back(f.index);
    size_delta_ += f.header_delta + static_cast<std::int64_t>(f.qp_bytes) - static_cast<std::int64_t>(f.raw_bytes);
  }
}

void MimeWalker::finish(std::string* out) {
  if (!line_.empty()) {
    std::string last = std::move(line_);
    line_.clear();
    piece(last, {}, out);
  }
  while (!stack_.empty()) pop_frame(out);
  if (scanning()) {
    std::sort(result_.convert.begin(), result_.convert.end());
    if (!result_.convert.empty()) size_delta_ += composite_delta_;
    result_.converted_size = static_cast<std::uint64_t>(static_cast<std::int64_t>(result_.input_size) + size_delta_);
  }
}

DowngradeScanner::DowngradeScanner(const DowngradeLimits& limits)
    : walker_(std::make_unique<MimeWalker>(limits, nullptr)) {}
DowngradeScanner::~DowngradeScanner() = default;
void DowngradeScanner::feed(std::string_view chunk) { walker_->feed(chunk, nullptr); }
DowngradePlan DowngradeScanner::finish() {
  walker_->finish(nullptr);
  return walker_->take_result();
}

DowngradeEncoder::DowngradeEncoder(const DowngradePlan& plan, const DowngradeLimits& limits)
    : walker_(std::make_unique<MimeWalker>(limits, &plan)) {}
DowngradeEncoder::~DowngradeEncoder() = default;
void DowngradeEncoder::feed(std::string_view chunk, std::string& out) { walker_->feed(chunk, &out); }
void DowngradeEncoder::finish(std::string& out) { walker_->finish(&out); }

DowngradePlan downgrade_to_7bit(std::string_view message, std::string& out, const DowngradeLimits& limits) {
  DowngradeScanner scanner(limits);
  scanner.feed(message);
  auto plan = scanner.finish();
  out.clear();
  if (plan.unconvertible) return plan;
  DowngradeEncoder encoder(plan, limits);
  encoder.feed(message, out);
  encoder.finish(out);
  return plan;
}

}  // namespace wsmtp::common::mail
