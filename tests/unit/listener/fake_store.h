// An in-memory Store for listener tests: a directory of local domains and users,
// message rows with their body chunks, and switches that make calls fail.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "store.h"

namespace wsmtp::listener::test {

class FakeStore : public common::Store {
 public:
  struct Message {
    common::NewMessage envelope;
    std::string body;  // the chunks in order (kept so by append_body and commit_message)
    std::map<int, std::string> chunks;
    int next_seq = 0;
    std::string held_reason;  // commit_message's edits
    bool committed = false;
    bool aborted = false;
    std::int64_t size = 0;
  };

  std::set<std::string> local_domains{"example.org", "mx.example.org"};
  std::set<std::string> users{"alice@example.org", "bob@example.org", "postmaster@mx.example.org"};
  std::set<std::string> full_mailboxes;  // among users: check_recipient says full_local
  std::map<std::string, std::string> auth_users{{"carol", "s3cret"}};
  bool fail_check = false, fail_begin = false, fail_append = false, fail_commit = false, fail_verify = false,
       fail_reserve = false;
  std::map<std::int64_t, Message> messages;
  // "check alice@example.org", "begin 42", "append 42 0", "commit 42", "abort 42", "whole 42", "verify carol"
  std::vector<std::string> calls;
  // The count of each reserve_message_ids call (kept apart: the listener refills
  // its reserve whenever it runs low, between any of the calls above).
  std::vector<int> reserved;

  common::RecipientVerdict check_recipient(const std::string& address, const std::string& domain) override {
    calls.push_back("check " + address);
    if (fail_check) throw std::runtime_error("database down");
    if (!local_domains.count(domain)) return common::RecipientVerdict::remote;
    if (!users.count(address)) return common::RecipientVerdict::unknown_local;
    return full_mailboxes.count(address) ? common::RecipientVerdict::full_local : common::RecipientVerdict::known_local;
  }
  std::uint64_t database_size = 0;
  std::uint64_t queue_size() override { return database_size; }
  std::vector<std::pair<std::string, std::uint64_t>> backlogs;  // every key's total
  std::vector<std::pair<std::string, std::uint64_t>> backlogs_at_least(std::uint64_t threshold,
                                                                       const std::vector<std::string>& also) override {
    if (fail_backlogs) throw std::runtime_error("database down");
    std::vector<std::pair<std::string, std::uint64_t>> out;
    for (const auto& b : backlogs)
      if (b.second >= threshold || std::find(also.begin(), also.end(), b.first) != also.end()) out.push_back(b);
    return out;
  }
  bool fail_backlogs = false;
  std::vector<std::string> commit_fair_clients;  // per commit_message call
  // Like the sequence: ids from 42 up, never twice.
  std::vector<std::int64_t> reserve_message_ids(int count) override {
    reserved.push_back(count);
    if (fail_reserve) throw std::runtime_error("database down");
    std::vector<std::int64_t> ids;
    for (int i = 0; i < count; ++i) ids.push_back(next_id_++);
    return ids;
  }
  void begin_message(std::int64_t msg_id, const common::NewMessage& message) override {
    calls.push_back("begin " + std::to_string(msg_id));
    if (fail_begin) throw std::runtime_error("database down");
    if (msg_id <= 0 || msg_id >= next_id_ || messages.count(msg_id)) throw std::logic_error("id not reserved");
    messages[msg_id].envelope = message;
  }
  void append_body(std::int64_t msg_id, int seq, std::string_view data) override {
    calls.push_back("append " + std::to_string(msg_id) + " " + std::to_string(seq));
    if (fail_append) throw std::runtime_error("disk full");
    auto& m = messages.at(msg_id);
    // A milter-checked message starts at chunk 1 (chunk 0, its header section, comes with the commit).
    if (seq < m.next_seq || (seq != m.next_seq && !(m.next_seq == 0 && seq == 1)) || m.committed || m.aborted)
      throw std::logic_error("append out of order");
    m.next_seq = seq + 1;
    m.chunks[seq] = std::string(data);
    m.body.append(data);
    max_chunk = std::max(max_chunk, data.size());
  }
  void commit_message(std::int64_t msg_id, std::int64_t size, const std::string& fair_client,
                      const common::ReceiptEdits& edits) override {
    calls.push_back("commit " + std::to_string(msg_id));
    commit_fair_clients.push_back(fair_client);
    if (fail_commit) throw std::runtime_error("serialization failure");
    auto& m = messages.at(msg_id);
    if (m.aborted) throw std::logic_error("commit after abort");
    if (edits.header) m.chunks[0] = *edits.header;
    for (int seq = edits.drop_first; seq <= edits.drop_last; ++seq) m.chunks.erase(seq);
    if (edits.envelope_from) m.envelope.envelope_from = *edits.envelope_from;
    if (edits.recipients) m.envelope.recipients = *edits.recipients;
    if (edits.held_reason) m.held_reason = *edits.held_reason;
    m.body.clear();
    for (const auto& [seq, data] : m.chunks) m.body += data;
    m.committed = true;
    m.size = size;
  }
  void abort_message(std::int64_t msg_id) override {
    calls.push_back("abort " + std::to_string(msg_id));
    auto& m = messages.at(msg_id);
    if (!m.committed) m.aborted = true;
  }

  void store_messages(const std::vector<common::CompleteMessage>& batch) override {
    // Like one transaction: either every message is stored or none.
    if (fail_begin || fail_commit) {
      calls.push_back("whole failed");
      throw std::runtime_error("database down");
    }
    for (const auto& whole : batch) {
      auto id = whole.msg_id;
      calls.push_back("whole " + std::to_string(id));
      if (id <= 0 || id >= next_id_ || messages.count(id)) throw std::logic_error("id not reserved");
      auto& m = messages[id];
      m.envelope = whole.envelope;
      m.body = whole.body;
      m.next_seq = 1;
      m.committed = true;
      m.size = static_cast<std::int64_t>(whole.body.size());
      max_chunk = std::max(max_chunk, whole.body.size());
    }
  }
  bool verify_user(const std::string& username, const std::string& password) override {
    calls.push_back("verify " + username);
    if (fail_verify) throw std::runtime_error("database down");
    auto it = auth_users.find(username);
    return it != auth_users.end() && it->second == password;
  }

  std::size_t max_chunk = 0;

 private:
  std::int64_t next_id_ = 42;

 public:
  // Where its ids start (a shard's range: N·10^14 + 1).
  void first_id(std::int64_t id) { next_id_ = id; }
};

}  // namespace wsmtp::listener::test
