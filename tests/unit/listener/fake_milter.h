// A scripted milter for the chain's tests: a listening loopback TCP or unix
// socket and a thread that accepts one connection and runs a script against
// it with blocking reads (bounded by a receive timeout, so a test never
// hangs). The script records every packet it receives; the test thread
// asserts after join(), since Catch2's assertions are not thread-safe.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "milter/milter_spec.h"
#include "milter/protocol.h"
#include "unique_fd.h"

namespace wsmtp::listener::milter::test {

inline std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24 & 0xff), static_cast<char>(v >> 16 & 0xff), static_cast<char>(v >> 8 & 0xff),
          static_cast<char>(v & 0xff)};
}

// One packet as a milter writes it: length, command byte, payload.
inline std::string packet(char command, const std::string& payload = {}) {
  return be32(static_cast<std::uint32_t>(payload.size() + 1)) + command + payload;
}

struct Packet {
  char command = 0;
  std::string payload;
  std::string raw;  // the whole packet, length included
};

class FakeSession {
 public:
  explicit FakeSession(int fd) : fd_(fd) {}

  // The next packet; throws on EOF or after the receive timeout.
  Packet read() {
    std::string header = read_exact(4);
    const auto length = static_cast<std::uint32_t>(static_cast<unsigned char>(header[0])) << 24 |
                        static_cast<std::uint32_t>(static_cast<unsigned char>(header[1])) << 16 |
                        static_cast<std::uint32_t>(static_cast<unsigned char>(header[2])) << 8 |
                        static_cast<std::uint32_t>(static_cast<unsigned char>(header[3]));
    std::string rest = read_exact(length);
    Packet p{rest[0], rest.substr(1), header + rest};
    received.push_back(p.raw);
    return p;
  }
  // The next packet that is not SMFIC_MACRO.
  Packet command() {
    for (;;) {
      Packet p = read();
      if (p.command != 'D') return p;
    }
  }
  void send_raw(const std::string& bytes) {
    std::size_t at = 0;
    while (at < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("fake milter: send failed");
      at += static_cast<std::size_t>(n);
    }
  }
  void send(char command, const std::string& payload = {}) { send_raw(packet(command, payload)); }
  // Reads SMFIC_OPTNEG and answers version 6 with these actions, steps and
  // SETSYMLIST lists (MacroStage, "names").
  void negotiate(std::uint32_t actions, std::uint32_t steps,
                 const std::vector<std::pair<MacroStage, std::string>>& lists = {}) {
    Packet p = read();
    if (p.command != 'O') throw std::runtime_error("fake milter: expected OPTNEG");
    std::string payload = be32(6) + be32(actions) + be32(steps);
    for (const auto& [stage, names] : lists) payload += be32(static_cast<std::uint32_t>(stage)) + names + '\0';
    send('O', payload);
  }
  // Reads until the MTA closes the connection (or the timeout).
  void drain() {
    try {
      for (;;) read();
    } catch (const std::exception&) {
    }
  }
  // Waits until the socket has bytes to read, without reading them.
  void wait_readable() {
    pollfd p{fd_, POLLIN, 0};
    ::poll(&p, 1, 5000);
  }

  std::vector<std::string> received;

 private:
  std::string read_exact(std::size_t n) {
    std::string out(n, '\0');
    std::size_t at = 0;
    while (at < n) {
      ssize_t got = ::recv(fd_, out.data() + at, n - at, 0);
      if (got <= 0) throw std::runtime_error(got == 0 ? "fake milter: EOF" : "fake milter: recv timed out");
      at += static_cast<std::size_t>(got);
    }
    return out;
  }
  int fd_;
};

class FakeMilter {
 public:
  enum class Kind { inet, unix_socket };

  explicit FakeMilter(Kind kind = Kind::inet) : kind_(kind) {
    if (kind == Kind::inet) {
      listener_ = common::UniqueFd(::socket(AF_INET, SOCK_STREAM, 0));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) throw std::runtime_error("bind");
      socklen_t len = sizeof(a);
      ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&a), &len);
      port_ = ntohs(a.sin_port);
    } else {
      static std::atomic<int> counter{0};
      path_ = "/tmp/wsmtp_milter_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".sock";
      ::unlink(path_.c_str());
      listener_ = common::UniqueFd(::socket(AF_UNIX, SOCK_STREAM, 0));
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, path_.c_str(), sizeof(a.sun_path) - 1);
      if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) throw std::runtime_error("bind");
    }
    if (::listen(listener_.get(), 8) != 0) throw std::runtime_error("listen");
  }
  ~FakeMilter() {
    join();
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  FakeMilter(const FakeMilter&) = delete;
  FakeMilter& operator=(const FakeMilter&) = delete;

  MilterSpec spec(std::string name, DefaultAction action = DefaultAction::tempfail,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) const {
    MilterSpec s;
    s.name = std::move(name);
    s.default_action = action;
    if (kind_ == Kind::inet) {
      s.transport = MilterSpec::Transport::inet;
      s.host = "127.0.0.1";
      s.port = port_;
    } else {
      s.transport = MilterSpec::Transport::unix_socket;
      s.path = path_;
    }
    s.connect_timeout = s.command_timeout = s.content_timeout = timeout;
    return s;
  }

  // Accepts one connection in a thread and runs the script on it; the
  // connection closes when the script returns.
  void serve(std::function<void(FakeSession&)> script) {
    thread_ = std::thread([this, script = std::move(script)] {
      try {
        pollfd p{listener_.get(), POLLIN, 0};
        if (::poll(&p, 1, 5000) != 1) throw std::runtime_error("fake milter: nobody connected");
        common::UniqueFd conn(::accept(listener_.get(), nullptr, nullptr));
        timeval tv{5, 0};
        ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        FakeSession session(conn.get());
        try {
          script(session);
        } catch (...) {
          received_ = session.received;
          throw;
        }
        received_ = session.received;
      } catch (const std::exception& e) {
        error_ = e.what();
      }
    });
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  // After join(): every packet received, and the script's error ("" if none).
  const std::vector<std::string>& received() const { return received_; }
  const std::string& error() const { return error_; }

 private:
  Kind kind_;
  common::UniqueFd listener_;
  std::uint16_t port_ = 0;
  std::string path_;
  std::thread thread_;
  std::vector<std::string> received_;
  std::string error_;
};

}  // namespace wsmtp::listener::milter::test
