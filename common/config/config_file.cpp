// INI parsing via inih. inih does not pass line numbers to the handler in Debian's
// build, so we feed it through ini_parse_stream with a reader that counts lines:
// the handler always runs for the line the reader returned last.
#include "config/config_file.h"

#include <ini.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include <fmt/format.h>

#include "byte_size.h"

namespace wsmtp::common {

struct ConfigParser {
  ConfigFile& file;
  std::istream& in;
  int line = 0;
  std::string error;

  static char* read_line(char* buf, int size, void* self_ptr) {
    auto* self = static_cast<ConfigParser*>(self_ptr);
    std::string text;
    if (!std::getline(self->in, text)) return nullptr;
    ++self->line;
    if (text.size() + 2 > static_cast<std::size_t>(size)) {
      if (self->error.empty())
        self->error = fmt::format("{}:{}: line longer than {} characters", self->file.name_, self->line, size - 2);
      text.clear();
    }
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\n';
    buf[text.size() + 1] = '\0';
    return buf;
  }

  static int on_entry(void* self_ptr, const char* section, const char* name, const char* value) {
    auto* self = static_cast<ConfigParser*>(self_ptr);
    if (!name) return 1;  // a bare [section] line
    auto& sec = self->file.sections_[section];
    auto [it, inserted] = sec.try_emplace(name, ConfigEntry{value ? value : "", self->line});
    if (!inserted) {
      if (self->error.empty())
        self->error = fmt::format("{}:{}: [{}] {}: duplicate key (first set on line {})", self->file.name_, self->line,
                                  section, name, it->second.line);
      return 0;
    }
    return 1;
  }
};

ConfigFile ConfigFile::load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(fmt::format("{}: cannot read configuration: {}", path, std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

ConfigFile ConfigFile::parse(const std::string& text, const std::string& name) {
  ConfigFile file;
  file.name_ = name;
  std::istringstream in(text);
  ConfigParser parser{file, in, 0, {}};
  int rc = ini_parse_stream(&ConfigParser::read_line, &parser, &ConfigParser::on_entry, &parser);
  if (!parser.error.empty()) throw ConfigError(parser.error);
  if (rc > 0) throw ConfigError(fmt::format("{}:{}: syntax error (expected [section] or key = value)", name, rc));
  if (rc < 0) throw ConfigError(fmt::format("{}: cannot parse configuration", name));
  return file;
}

ConfigFile ConfigFile::empty() {
  ConfigFile file;
  file.name_ = "(defaults)";
  return file;
}

const std::map<std::string, ConfigEntry>* ConfigFile::section(const std::string& section) const {
  auto it = sections_.find(section);
  return it == sections_.end() ? nullptr : &it->second;
}

std::vector<std::string> ConfigFile::sections_starting_with(const std::string& prefix) const {
  std::vector<std::string> out;
  for (const auto& [name, entries] : sections_)
    if (name.compare(0, prefix.size(), prefix) == 0) out.push_back(name);
  return out;
}

SectionReader::SectionReader(const ConfigFile& file, std::string section) : file_(file), section_(std::move(section)) {}

const ConfigEntry* SectionReader::find(const std::string& key) {
  used_.insert(key);
  const auto* sec = file_.section(section_);
  if (!sec) return nullptr;
  auto it = sec->find(key);
  return it == sec->end() ? nullptr : &it->second;
}

void SectionReader::fail(const std::string& key, const std::string& problem) const {
  const auto* sec = file_.section(section_);
  int line = 0;
  if (sec) {
    auto it = sec->find(key);
    if (it != sec->end()) line = it->second.line;
  }
  throw ConfigError(fmt::format("{}:{}: [{}] {}: {}", file_.name(), line, section_, key, problem));
}

std::string SectionReader::get_string(const std::string& key, const std::string& fallback) {
  const auto* e = find(key);
  return e ? e->value : fallback;
}

namespace {

bool parse_u64(std::string_view text, std::uint64_t& out) {
  if (text.empty()) return false;
  auto r = std::from_chars(text.data(), text.data() + text.size(), out);
  return r.ec == std::errc() && r.ptr == text.data() + text.size();
}

bool parse_i64(std::string_view text, std::int64_t& out) {
  if (text.empty()) return false;
  auto r = std::from_chars(text.data(), text.data() + text.size(), out);
  return r.ec == std::errc() && r.ptr == text.data() + text.size();
}

// Splits "50M" into 50 and the multiplier of its unit; nullopt for unknown units.
bool split_unit(std::string_view text, std::string_view units, const std::uint64_t* multipliers, std::uint64_t& number,
                std::uint64_t& multiplier) {
  multiplier = 1;
  if (!text.empty()) {
    auto pos = units.find(text.back());
    if (pos != std::string_view::npos) {
      multiplier = multipliers[pos];
      text.remove_suffix(1);
    }
  }
  return parse_u64(text, number);
}

}  // namespace

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  static constexpr std::uint64_t kMult[] = {1, 60, 3600, 86400};
  std::uint64_t n = 0, mult = 1;
  if (!split_unit(text, "smhd", kMult, n, mult) || n > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  return std::chrono::seconds(static_cast<std::int64_t>(n * mult));
}

std::int64_t SectionReader::get_int(const std::string& key, std::int64_t fallback, std::int64_t min, std::int64_t max) {
  const auto* e = find(key);
  if (!e) return fallback;
  std::int64_t v = 0;
  if (!parse_i64(e->value, v)) fail(key, fmt::format("expected an integer, got '{}'", e->value));
  if (v < min || v > max) fail(key, fmt::format("{} is out of range [{}, {}]", v, min, max));
  return v;
}

bool SectionReader::get_bool(const std::string& key, bool fallback) {
  const auto* e = find(key);
  if (!e) return fallback;
  if (e->value == "yes" || e->value == "true" || e->value == "on" || e->value == "1") return true;
  if (e->value == "no" || e->value == "false" || e->value == "off" || e->value == "0") return false;
  fail(key, fmt::format("expected yes or no, got '{}'", e->value));
}

std::chrono::seconds SectionReader::get_duration(const std::string& key, std::chrono::seconds fallback,
                                                 std::chrono::seconds min, std::chrono::seconds max) {
  const auto* e = find(key);
  if (!e) return fallback;
  auto parsed = parse_duration(e->value);
  if (!parsed) fail(key, fmt::format("expected a duration such as 30s, 5m, 2h or 7d, got '{}'", e->value));
  auto v = *parsed;
  if (v < min || v > max) fail(key, fmt::format("{}s is out of range [{}s, {}s]", v.count(), min.count(), max.count()));
  return v;
}

std::uint64_t SectionReader::get_size(const std::string& key, std::uint64_t fallback, std::uint64_t min,
                                      std::uint64_t max) {
  const auto* e = find(key);
  if (!e) return fallback;
  auto parsed = parse_byte_size(e->value);
  if (!parsed) fail(key, fmt::format("expected a size such as 1048576, 512k or 50M, got '{}'", e->value));
  std::uint64_t v = *parsed;
  if (v < min || v > max) fail(key, fmt::format("{} bytes is out of range [{}, {}]", v, min, max));
  return v;
}

std::vector<std::string> SectionReader::get_list(const std::string& key, const std::vector<std::string>& fallback) {
  const auto* e = find(key);
  if (!e) return fallback;
  std::vector<std::string> out;
  std::string item;
  for (char ch : e->value + ",") {
    if (ch == ',' || ch == ' ' || ch == '\t' || ch == '\n') {
      if (!item.empty()) out.push_back(std::move(item));
      item.clear();
    } else {
      item += ch;
    }
  }
  return out;
}

std::size_t SectionReader::get_word(const std::string& key, std::size_t fallback_index,
                                    const std::vector<std::string_view>& words) {
  const auto* e = find(key);
  if (!e) return fallback_index;
  for (std::size_t i = 0; i < words.size(); ++i)
    if (e->value == words[i]) return i;
  std::string expected;
  for (std::size_t i = 0; i < words.size(); ++i)
    expected += fmt::format("{}{}", i == 0 ? "" : i + 1 == words.size() ? " or " : ", ", words[i]);
  fail(key, fmt::format("must be {}, got '{}'", expected, e->value));
}

void SectionReader::finish() const {
  const auto* sec = file_.section(section_);
  if (!sec) return;
  for (const auto& [key, entry] : *sec)
    if (!used_.count(key))
      throw ConfigError(fmt::format("{}:{}: [{}] {}: unknown key", file_.name(), entry.line, section_, key));
}

}  // namespace wsmtp::common
