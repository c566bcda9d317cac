#include "autoreply_queue.h"

#include <ctime>
#include <optional>

#include "autoreply.h"
#include "log.h"
#include "queue_id.h"
#include "db/autoreplies.h"
#include "pg/transitions_generated.h"

namespace wsmtp::router {
namespace {

using common::pg::AutoReplyText;

std::vector<std::optional<AutoReplyText>> claim_all(pqxx::transaction_base& tx, const std::vector<DueAutoReply>& due) {
  std::vector<std::optional<AutoReplyText>> claimed;
  claimed.reserve(due.size());
  for (const auto& d : due) claimed.push_back(common::pg::claim_autoreply(tx, d.mailbox, d.sender));
  return claimed;
}

}  // namespace

std::vector<DueAutoReply> due_autoreplies(std::int64_t msg_id, const MessageContext& context,
                                          const std::vector<std::pair<std::string, std::string>>& planned) {
  std::vector<DueAutoReply> due;
  if (planned.empty() || autoreply_sender_excluded(context.envelope_from)) return due;
  const auto& headers = context.headers();
  if (autoreply_message_excluded(headers)) return due;
  int position = 0;
  for (const auto& [mailbox, original_rcpt] : planned) {
    ++position;
    if (mailbox == context.envelope_from || !autoreply_direct_recipient(headers, mailbox, original_rcpt)) continue;
    due.push_back({msg_id, mailbox, context.envelope_from, &headers, position});
  }
  return due;
}

void queue_autoreplies(pqxx::connection& shard_conn, pqxx::transaction_base& shard_tx, common::pg::DirectoryLink& link,
                       const RouterConfig& config, const std::vector<DueAutoReply>& due) {
  if (due.empty()) return;
  std::vector<std::optional<AutoReplyText>> claimed;
  if (link.shared()) {
    claimed = claim_all(shard_tx, due);
  } else {
    // Once per period must hold across shards, so the record is the
    // directory's. Its commit waits for the WAL flush (configure_router_session
    // makes only the shard's connection asynchronous): a record lost in a
    // directory crash after the reply went out would let the sender's next
    // message be answered again.
    pqxx::work directory_tx(link.connection(shard_conn));
    claimed = claim_all(directory_tx, due);
    directory_tx.commit();
  }
  for (std::size_t i = 0; i < due.size(); ++i) {
    if (!claimed[i]) continue;
    const auto& d = due[i];
    const std::time_t now = std::time(nullptr);
    AutoReplyMessage reply{
        d.mailbox,
        d.sender,
        claimed[i]->subject,
        claimed[i]->body,
        config.hostname,
        "autoreply." + std::to_string(d.msg_id) + "." + std::to_string(d.position) + "." + std::to_string(now),
        now};
    auto id = common::pg::create_generated_message(shard_tx, {"", "", config.hostname, "wroute", {d.sender}},
                                                   compose_autoreply(reply, *d.headers), "auto-reply", d.msg_id);
    log::info("msg={} auto-reply from {} queued as msg={}", common::qid(d.msg_id), d.mailbox, common::qid(id));
  }
}

}  // namespace wsmtp::router
