// ListenerConfig parsing: defaults, valid values, and errors that name the key and line.
#include <catch2/catch.hpp>

#include <string>

#include "config.h"

namespace wsmtp::listener {
namespace {

ListenerConfig parse(const std::string& text) {
  return read_listener_config(common::ConfigFile::parse(text, "test.conf"));
}

}  // namespace

TEST_CASE("listener config defaults", "[config]") {
  auto c = read_listener_config(common::ConfigFile::empty());
  REQUIRE(c.listen.size() == 1);
  CHECK(c.listen[0].str() == "127.0.0.1:2525");
  CHECK(c.max_line_length == 1000);
  CHECK(c.max_received_headers == 50);
  CHECK(c.max_connection_rate == 60);
  CHECK(c.loops >= 1);
  CHECK_FALSE(c.tls_enabled());
  CHECK_FALSE(c.hostname.empty());
  CHECK(c.max_message_size == 25u << 20);
  CHECK(c.max_recipients == 100);
  CHECK(c.command_timeout == std::chrono::seconds(300));
  CHECK(c.data_timeout == std::chrono::seconds(600));
  CHECK(c.max_connections == 1000);
  CHECK(c.max_connections_per_client == 20);
  CHECK(c.max_errors == 10);
  CHECK(c.store_connections == 4);
  CHECK(c.trusted_networks.empty());
  CHECK_FALSE(c.is_trusted(*IpAddress::parse("127.0.0.1")));
  // Loopback is exempt from the client limits, but still not trusted to relay.
  CHECK(c.is_limit_exempt(*IpAddress::parse("127.0.0.1")));
  CHECK(c.is_limit_exempt(*IpAddress::parse("127.3.2.1")));
  CHECK(c.is_limit_exempt(*IpAddress::parse("::1")));
  CHECK_FALSE(c.is_limit_exempt(*IpAddress::parse("192.0.2.1")));
  CHECK(c.command_deadline == std::chrono::seconds(300));
  CHECK(c.min_data_rate == 500);
  CHECK(c.max_session_time == std::chrono::seconds(3600));
}

TEST_CASE("limit_exceptions: default loopback and trusted_networks; a list replaces it", "[config]") {
  auto c = parse("[listener]\ntrusted_networks = 192.0.2.0/24\n");
  CHECK(c.is_limit_exempt(*IpAddress::parse("192.0.2.7")));
  CHECK(c.is_limit_exempt(*IpAddress::parse("127.0.0.1")));
  CHECK_FALSE(c.is_limit_exempt(*IpAddress::parse("198.51.100.1")));

  c = parse("[listener]\ntrusted_networks = 192.0.2.0/24\nlimit_exceptions = 198.51.100.0/24\n");
  CHECK(c.is_limit_exempt(*IpAddress::parse("198.51.100.1")));
  CHECK_FALSE(c.is_limit_exempt(*IpAddress::parse("127.0.0.1")));
  CHECK_FALSE(c.is_limit_exempt(*IpAddress::parse("192.0.2.7")));
  CHECK_FALSE(c.is_trusted(*IpAddress::parse("198.51.100.1")));  // exempt is not trusted

  c = parse("[listener]\ntrusted_networks = 192.0.2.0/24\nlimit_exceptions = ::1, trusted_networks\n");
  CHECK(c.is_limit_exempt(*IpAddress::parse("192.0.2.7")));
  CHECK(c.is_limit_exempt(*IpAddress::parse("::1")));
  CHECK_FALSE(c.is_limit_exempt(*IpAddress::parse("127.0.0.1")));

  c = parse("[listener]\nlimit_exceptions =\n");
  CHECK(c.limit_exceptions.empty());

  CHECK_THROWS_WITH(parse("[listener]\nlimit_exceptions = 127.0.0.1/8\n"),
                    Catch::Contains("test.conf:2: [listener] limit_exceptions"));
}

TEST_CASE("ipv6_limit_prefix: default /64, checked range", "[config]") {
  CHECK(read_listener_config(common::ConfigFile::empty()).ipv6_limit_prefix == 64);
  CHECK(parse("[listener]\nipv6_limit_prefix = 56\n").ipv6_limit_prefix == 56);
  CHECK(parse("[listener]\nipv6_limit_prefix = 128\n").ipv6_limit_prefix == 128);
  for (const char* bad : {"31", "129", "0", "-64", "/64", "sixty-four"})
    CHECK_THROWS_WITH(parse(std::string("[listener]\nipv6_limit_prefix = ") + bad + "\n"),
                      Catch::Contains("test.conf:2: [listener] ipv6_limit_prefix"));
  CHECK_THROWS_WITH(parse("[listener]\nipv6_limit_prefix = 16\n"), Catch::Contains("out of range [32, 128]"));
}

TEST_CASE("queue_max_size and queue_size_check_interval: off by default, sizes, bounds", "[config]") {
  auto c = read_listener_config(common::ConfigFile::empty());
  CHECK(c.queue_max_size == 0);
  CHECK(c.queue_size_check_interval == std::chrono::seconds(5));
  c = parse("[listener]\nqueue_max_size = 20G\nqueue_size_check_interval = 2s\n");
  CHECK(c.queue_max_size == (std::uint64_t(20) << 30));
  CHECK(c.queue_size_check_interval == std::chrono::seconds(2));
  CHECK(parse("[listener]\nqueue_max_size = 0\n").queue_max_size == 0);
  CHECK_THROWS_WITH(parse("[listener]\nqueue_max_size = 512k\n"),
                    Catch::Contains("test.conf:2: [listener] queue_max_size"));
  CHECK_THROWS_WITH(parse("[listener]\nqueue_max_size = lots\n"),
                    Catch::Contains("test.conf:2: [listener] queue_max_size"));
  CHECK_THROWS_WITH(parse("[listener]\nqueue_size_check_interval = 0s\n"),
                    Catch::Contains("test.conf:2: [listener] queue_size_check_interval"));
}

TEST_CASE("backlog quotas: defaults, 0 turns one off, bounds", "[config][backlog]") {
  auto c = read_listener_config(common::ConfigFile::empty());
  CHECK(c.backlog_quotas.sender_domain == 10000);
  CHECK(c.backlog_quotas.client == 10000);
  CHECK(c.backlog_quotas.user == 10000);
  CHECK(c.backlog_quotas.trusted == 0);  // local applications may queue thousands
  CHECK(c.backlog_check_interval == std::chrono::seconds(1));
  c = parse(
      "[listener]\nbacklog_quota_sender_domain = 50\nbacklog_quota_client = 0\nbacklog_quota_user = 7\n"
      "backlog_quota_trusted = 100000\nbacklog_check_interval = 3s\n");
  CHECK(c.backlog_quotas.sender_domain == 50);
  CHECK(c.backlog_quotas.client == 0);
  CHECK(c.backlog_quotas.user == 7);
  CHECK(c.backlog_quotas.trusted == 100000);
  CHECK(c.backlog_quotas.threshold() == 7);
  CHECK(c.backlog_check_interval == std::chrono::seconds(3));
  CHECK_THROWS_WITH(parse("[listener]\nbacklog_quota_client = -1\n"),
                    Catch::Contains("test.conf:2: [listener] backlog_quota_client"));
  CHECK_THROWS_WITH(parse("[listener]\nbacklog_check_interval = 0s\n"),
                    Catch::Contains("test.conf:2: [listener] backlog_check_interval"));
}

TEST_CASE("auth_check_threads and auth_check_queue: defaults and bounds", "[config]") {
  auto c = read_listener_config(common::ConfigFile::empty());
  CHECK(c.auth_check_threads == 2);
  CHECK(c.auth_check_queue == 16);
  c = parse("[listener]\nauth_check_threads = 1\nauth_check_queue = 100\n");
  CHECK(c.auth_check_threads == 1);
  CHECK(c.auth_check_queue == 100);
  CHECK_THROWS_WITH(parse("[listener]\nauth_check_threads = 0\n"),
                    Catch::Contains("test.conf:2: [listener] auth_check_threads"));
  CHECK_THROWS_WITH(parse("[listener]\nauth_check_queue = 0\n"),
                    Catch::Contains("test.conf:2: [listener] auth_check_queue"));
}

TEST_CASE("deadline keys", "[config]") {
  auto c = parse("[listener]\ncommand_deadline = 2s\nmin_data_rate = 1000\nmax_session_time = 0\n");
  CHECK(c.command_deadline == std::chrono::seconds(2));
  CHECK(c.min_data_rate == 1000);
  CHECK(c.max_session_time == std::chrono::seconds(0));
  CHECK_THROWS_WITH(parse("[listener]\ncommand_deadline = 0\n"),
                    Catch::Contains("test.conf:2: [listener] command_deadline"));
  CHECK_THROWS_WITH(parse("[listener]\nmin_data_rate = -1\n"), Catch::Contains("[listener] min_data_rate"));
}

TEST_CASE("listener config values", "[config]") {
  auto c = parse(
      "[listener]\n"
      "listen = [::1]:25, 127.0.0.1:25\n"
      "max_line_length = 2000\n"
      "tarpit_delay = 2s\n"
      "loops = 3\n"
      "hostname = mx.example.org\n"
      "max_message_size = 50M\n"
      "max_recipients = 500\n"
      "command_timeout = 5m\n"
      "data_timeout = 20m\n"
      "max_connections = 200\n"
      "max_connections_per_client = 5\n"
      "max_errors = 3\n"
      "store_connections = 8\n"
      "trusted_networks = 127.0.0.0/8, ::1 192.0.2.0/24\n");
  REQUIRE(c.listen.size() == 2);
  CHECK(c.listen[0].str() == "[::1]:25");
  CHECK(c.listen[1].str() == "127.0.0.1:25");
  CHECK(c.max_line_length == 2000);
  CHECK(c.tarpit_delay == std::chrono::seconds(2));
  CHECK(c.loops == 3);
  CHECK(c.hostname == "mx.example.org");
  CHECK(c.max_message_size == 50u << 20);
  CHECK(c.max_recipients == 500);
  CHECK(c.command_timeout == std::chrono::seconds(300));
  CHECK(c.data_timeout == std::chrono::seconds(1200));
  CHECK(c.max_connections == 200);
  CHECK(c.max_connections_per_client == 5);
  CHECK(c.max_errors == 3);
  CHECK(c.store_connections == 8);
  REQUIRE(c.trusted_networks.size() == 3);
  CHECK(c.is_trusted(*IpAddress::parse("127.1.2.3")));
  CHECK(c.is_trusted(*IpAddress::parse("::1")));
  CHECK(c.is_trusted(*IpAddress::parse("::ffff:192.0.2.77")));
  CHECK_FALSE(c.is_trusted(*IpAddress::parse("192.0.3.1")));
}

TEST_CASE("max_message_size takes the size syntax wsmtpctl takes (common/byte_size.h)", "[config]") {
  CHECK(parse("[listener]\nmax_message_size = 50m\n").max_message_size == 50u << 20);
  CHECK(parse("[listener]\nmax_message_size = 512k\n").max_message_size == 512u << 10);
  CHECK(parse("[listener]\nmax_message_size = 1g\n").max_message_size == 1u << 30);
  CHECK(parse("[listener]\nmax_message_size = 10MiB\n").max_message_size == 10u << 20);
  CHECK_THROWS_WITH(parse("[listener]\nmax_message_size = 50x\n"),
                    Catch::Contains("test.conf:2: [listener] max_message_size"));
}

TEST_CASE("bad listener config names the key and the line", "[config]") {
  struct Row {
    const char* text;
    const char* expected;
  };
  auto row = GENERATE(values<Row>({
      {"[listener]\ntrusted_networks = 10.0.0.0/33\n", "test.conf:2: [listener] trusted_networks"},
      {"[listener]\ntrusted_networks = 10.0.0.1/8\n", "test.conf:2: [listener] trusted_networks"},
      {"[listener]\ntrusted_networks = example.org\n", "test.conf:2: [listener] trusted_networks"},
      {"[listener]\nhostname = mx\nmax_recipents = 5\n", "test.conf:3: [listener] max_recipents: unknown key"},
      {"[listener]\nlisten = localhost:25\n", "test.conf:2: [listener] listen"},
      {"[listener]\nlisten = ::1:25\n", "test.conf:2: [listener] listen"},
      {"[listener]\nlisten = 127.0.0.1:70000\n", "test.conf:2: [listener] listen"},
      {"[listener]\nmax_line_length = 500\n", "test.conf:2: [listener] max_line_length"},
      {"[listener]\ntls_cert_file = /nonexistent.pem\ntls_key_file = /nonexistent.key\n",
       "test.conf:2: [listener] tls_cert_file"},
      {"[listener]\nhostname = bad_name!\n", "test.conf:2: [listener] hostname"},
      {"[listener]\ncommand_timeout = 5\n", "test.conf:2: [listener] command_timeout"},
      {"[listener]\nmax_message_size = lots\n", "test.conf:2: [listener] max_message_size"},
      {"[listener]\nmax_connections = 10\nmax_connections_per_client = 11\n",
       "test.conf:3: [listener] max_connections_per_client"},
  }));
  INFO(row.text);
  CHECK_THROWS_WITH(parse(row.text), Catch::Matchers::StartsWith(row.expected));
}

}  // namespace wsmtp::listener
