// The installation's one configuration file (INI syntax, parsed by inih), and a
// typed reader per section. Each program reads its own section into a plain struct
// in its own config.cpp; a bad value or an unknown key is a ConfigError that names
// the file, line, section and key.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <utility>
#include <cstddef>
#include <optional>
#include <string_view>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace wsmtp::common {

// "30", "30s", "5m", "2h", "7d" -> seconds; nullopt if malformed.
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ConfigEntry {
  std::string value;
  int line = 0;
};

class ConfigFile {
 public:
  // Reads and parses path. Throws ConfigError naming the file and line for
  // unreadable files, syntax errors and duplicate keys.
  static ConfigFile load(const std::string& path);
  // Parses text as if it were the file `name` (for tests).
  static ConfigFile parse(const std::string& text, const std::string& name);
  // An empty configuration: every key takes its default.
  static ConfigFile empty();

  const std::string& name() const { return name_; }
  const std::map<std::string, ConfigEntry>* section(const std::string& section) const;
  // The names of the sections that start with prefix ("shard "), sorted.
  std::vector<std::string> sections_starting_with(const std::string& prefix) const;

 private:
  friend struct ConfigParser;
  std::string name_;
  std::map<std::string, std::map<std::string, ConfigEntry>> sections_;
};

// Typed access to one section. Every getter takes the key's default and its
// bounds; finish() rejects keys nobody asked for (typos do not pass silently).
class SectionReader {
 public:
  SectionReader(const ConfigFile& file, std::string section);

  std::string get_string(const std::string& key, const std::string& fallback);
  std::int64_t get_int(const std::string& key, std::int64_t fallback, std::int64_t min, std::int64_t max);
  bool get_bool(const std::string& key, bool fallback);
  // "30", "30s", "5m", "2h", "7d"
  std::chrono::seconds get_duration(const std::string& key, std::chrono::seconds fallback, std::chrono::seconds min,
                                    std::chrono::seconds max);
  // "1048576", "512k", "50M", "1G": the syntax of parse_byte_size (byte_size.h)
  std::uint64_t get_size(const std::string& key, std::uint64_t fallback, std::uint64_t min, std::uint64_t max);
  // Comma- or space-separated list.
  std::vector<std::string> get_list(const std::string& key, const std::vector<std::string>& fallback);
  // One of the words (exact case); returns its index, fallback_index when the
  // key is absent. Any other value fails with the words listed.
  std::size_t get_word(const std::string& key, std::size_t fallback_index, const std::vector<std::string_view>& words);
  // A value named by a word of names (the key's whole vocabulary): the default
  // is a value, not a word, so a struct's initializer stays the one place it is
  // written. fallback must have a word in names.
  template <class T, std::size_t N>
  T get_choice(const std::string& key, T fallback, const std::pair<std::string_view, T> (&names)[N]) {
    std::vector<std::string_view> words;
    std::size_t fallback_index = N;
    for (std::size_t i = 0; i < N; ++i) {
      words.push_back(names[i].first);
      if (names[i].second == fallback) fallback_index = i;
    }
    if (fallback_index == N) throw std::logic_error("[" + section_ + "] " + key + ": the default has no name");
    return names[get_word(key, fallback_index, words)].second;
  }

  // Throws ConfigError for the first key of the section that was never read.
  void finish() const;
  // A ConfigError for key's value, with file, line and section.
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const;

 private:
  const ConfigEntry* find(const std::string& key);

  const ConfigFile& file_;
  std::string section_;
  std::set<std::string> used_;
};

}  // namespace wsmtp::common
