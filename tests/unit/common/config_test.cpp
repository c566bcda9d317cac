#include "config/common_config.h"
#include "config/config_file.h"
#include "config/worker_scaling.h"

#include <catch2/catch.hpp>

using namespace wsmtp::common;
using namespace std::chrono_literals;

TEST_CASE("sections are read with defaults, units and bounds") {
  auto f = ConfigFile::parse(
      "# comment\n[queue]\nlease_time = 2m\nmax_expired_claims = 7\n\n[database]\nconninfo = host=/tmp dbname=x\n",
      "t.conf");
  auto q = read_queue_config(f);
  CHECK(q.lease_time == 120s);
  CHECK(q.max_expired_claims == 7);
  CHECK(q.poll_interval == 5s);
  CHECK(read_database_config(f).conninfo == "host=/tmp dbname=x");
}

TEST_CASE("errors name the file, line, section and key") {
  auto bad_value = ConfigFile::parse("[queue]\n\nlease_time = soon\n", "t.conf");
  REQUIRE_THROWS_WITH(read_queue_config(bad_value), Catch::Contains("t.conf:3: [queue] lease_time"));
  auto out_of_range = ConfigFile::parse("[queue]\nmax_expired_claims = 0\n", "t.conf");
  REQUIRE_THROWS_WITH(read_queue_config(out_of_range), Catch::Contains("t.conf:2: [queue] max_expired_claims"));
  auto unknown = ConfigFile::parse("[queue]\nlease_time = 1m\nleese = 3\n", "t.conf");
  REQUIRE_THROWS_WITH(read_queue_config(unknown), Catch::Contains("t.conf:3: [queue] leese: unknown key"));
  REQUIRE_THROWS_WITH(ConfigFile::parse("[queue]\nthis line is wrong\n", "t.conf"), Catch::Contains("t.conf:2"));
  REQUIRE_THROWS_WITH(ConfigFile::parse("[queue]\na = 1\na = 2\n", "t.conf"), Catch::Contains("duplicate key"));
  auto password = ConfigFile::parse("[database]\nconninfo = host=x password=secret\n", "t.conf");
  REQUIRE_THROWS_WITH(read_database_config(password), Catch::Contains("password"));
  REQUIRE_THROWS_WITH(ConfigFile::load("/nonexistent/wsmtp.conf"), Catch::Contains("/nonexistent/wsmtp.conf"));
}

TEST_CASE("sizes, durations and lists") {
  auto f = ConfigFile::parse("[x]\ns = 50M\nd = 7d\nl = a, b  c\nb = yes\n", "t.conf");
  SectionReader r(f, "x");
  CHECK(r.get_size("s", 0, 0, ~0ull) == 50ull * 1024 * 1024);
  CHECK(r.get_duration("d", 0s, 0s, 30 * 24h) == 7 * 24h);
  CHECK(r.get_list("l", {}) == std::vector<std::string>{"a", "b", "c"});
  CHECK(r.get_bool("b", false));
  CHECK_NOTHROW(r.finish());
  CHECK(parse_duration("90") == 90s);
  CHECK_FALSE(parse_duration("5 minutes"));
}

TEST_CASE("worker scaling keys are shared by the supervised daemons' sections") {
  auto read = [](const std::string& text) {
    auto f = ConfigFile::parse("[router]\n" + text, "t.conf");
    SectionReader s(f, "router");
    auto w = read_worker_scaling(s);
    s.finish();
    return w;
  };
  auto defaults = read("");
  CHECK(defaults.min_workers == 1);
  CHECK(defaults.max_workers == 4);
  CHECK(defaults.idle_time == 30s);
  auto set = read("min_workers = 2\nmax_workers = 10\nbacklog_per_worker = 50\nidle_time = 1m\n");
  CHECK(set.min_workers == 2);
  CHECK(set.max_workers == 10);
  CHECK(set.backlog_per_worker == 50);
  CHECK(set.idle_time == 60s);
  REQUIRE_THROWS_WITH(read("min_workers = 5\nmax_workers = 2\n"),
                      Catch::Contains("t.conf:3: [router] max_workers: must be at least min_workers"));
}

namespace {
enum class Colour { red, green, blue };
constexpr std::pair<std::string_view, Colour> kColours[] = {
    {"red", Colour::red}, {"green", Colour::green}, {"blue", Colour::blue}};

Colour read_colour(const std::string& text, Colour fallback) {
  const auto file = ConfigFile::parse(text, "t.conf");
  SectionReader s(file, "paint");
  return s.get_choice("colour", fallback, kColours);
}
}  // namespace

TEST_CASE("a choice key: the default is a value, the file names a word") {
  CHECK(read_colour("", Colour::green) == Colour::green);
  CHECK(read_colour("[paint]\ncolour = blue\n", Colour::green) == Colour::blue);
  CHECK(read_colour("[paint]\ncolour = red\n", Colour::blue) == Colour::red);
  CHECK_THROWS_WITH(read_colour("[paint]\ncolour = Blue\n", Colour::red),
                    "t.conf:2: [paint] colour: must be red, green or blue, got 'Blue'");
  CHECK_THROWS_WITH(read_colour("[paint]\ncolour =\n", Colour::red), Catch::Contains("got ''"));
}

TEST_CASE("a choice key whose default has no word is a programming error, not a config error") {
  constexpr std::pair<std::string_view, Colour> kPrimary[] = {{"red", Colour::red}, {"blue", Colour::blue}};
  const auto file = ConfigFile::empty();
  SectionReader s(file, "paint");
  CHECK_THROWS_AS(s.get_choice("colour", Colour::green, kPrimary), std::logic_error);
}
