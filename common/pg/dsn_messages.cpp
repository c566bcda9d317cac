#include "pg/dsn_messages.h"

#include <ctime>
#include <map>

#include <fmt/format.h>

#include "dsn.h"
#include "log.h"
#include "queue_id.h"
#include "pg/body.h"
#include "pg/sql_util.h"
#include "pg/transitions_generated.h"

namespace wsmtp::common::pg {
namespace {

constexpr std::size_t kMaxHeaderBytes = 64 * 1024;

struct Original {
  std::string envelope_from;
  std::time_t arrival = 0;
};

Original load_original(pqxx::transaction_base& tx, std::int64_t msg_id) {
  auto row = tx.exec_params1(
      "SELECT envelope_from, extract(epoch FROM COALESCE(received_at, created_at))::bigint FROM messages WHERE id = $1",
      msg_id);
  return {row[0].as<std::string>(), static_cast<std::time_t>(row[1].as<std::int64_t>())};
}

// RFC 3462 text/rfc822-headers: the report quotes the headers, never the body.
std::string load_headers(pqxx::transaction_base& tx, std::int64_t msg_id) {
  return dsn::header_section(read_body_start(tx, msg_id, kMaxHeaderBytes), kMaxHeaderBytes);
}

std::int64_t queue_report(pqxx::transaction_base& tx, dsn::Report& report, const Original& original,
                          const std::string& reporting_mta) {
  report.reporting_mta = reporting_mta;
  report.recipient = original.envelope_from;
  report.arrival = original.arrival;
  report.now = std::time(nullptr);
  report.original_headers = load_headers(tx, report.msg_id);
  NewMessage m;
  m.envelope_from = "";  // RFC 5321 §4.5.5: reports are sent with the null sender
  m.client_helo = reporting_mta;
  m.received_by = "wdeliver-dsn";
  m.recipients = {original.envelope_from};
  return create_generated_message(tx, m, dsn::compose(report),
                                  report.action == dsn::Action::delayed ? "delay warning" : "dsn", report.msg_id);
}

}  // namespace

std::optional<std::int64_t> queue_failure_dsn(pqxx::transaction_base& tx, std::int64_t msg_id,
                                              const std::string& reporting_mta) {
  auto original = load_original(tx, msg_id);
  // A list's copies were sent with the list's bounce address as the reverse
  // path (RFC 5321 §4.5.5 reports go to the reverse path): their failures are
  // the list's to hear about, not the poster's. One report per reverse path.
  auto rows = tx.exec_params(
      "SELECT id, recipient, original_rcpt, COALESCE(last_error, ''), attempts, "
      "  extract(epoch FROM final_at)::bigint, COALESCE(envelope_from_override, $2) FROM deliveries "
      "WHERE message_id = $1 AND status = 'bounced' AND dsn_message_id IS NULL ORDER BY id",
      msg_id, original.envelope_from);
  std::map<std::string, std::pair<dsn::Report, std::vector<std::int64_t>>> by_sender;
  for (const auto& row : rows) {
    auto& [report, ids] = by_sender[row[6].as<std::string>()];
    ids.push_back(row[0].as<std::int64_t>());
    std::time_t attempted = row[4].as<int>() > 0 ? static_cast<std::time_t>(row[5].as<std::int64_t>()) : 0;
    report.recipients.push_back(
        {row[1].as<std::string>(), row[2].as<std::string>(), row[3].as<std::string>(), attempted});
  }
  std::optional<std::int64_t> to_poster;
  for (auto& [sender, entry] : by_sender) {
    auto& [report, ids] = entry;
    if (sender.empty()) {
      log::info("msg={} {} bounced deliveries not reported: the reverse path is <>", qid(msg_id), ids.size());
      continue;
    }
    report.action = dsn::Action::failed;
    report.msg_id = msg_id;
    auto dsn_id = queue_report(tx, report, {sender, original.arrival}, reporting_mta);
    tx.exec_params0("UPDATE deliveries SET dsn_message_id = $2 WHERE message_id = $1 AND id = ANY($3::bigint[])",
                    msg_id, dsn_id, bigint_array(ids));
    log::info("msg={} DSN msg={} queued to <{}> for {} failed recipients", qid(msg_id), qid(dsn_id), sender,
              ids.size());
    if (sender == original.envelope_from) to_poster = dsn_id;
  }
  return to_poster;
}

std::optional<std::int64_t> queue_delay_warning(pqxx::transaction_base& tx, std::int64_t msg_id,
                                                const std::string& reporting_mta, std::chrono::seconds warn_after) {
  // Claim the one warning first: the row is ours (locked by the finish), and the
  // condition makes a second warning impossible.
  auto due = tx.exec_params(
      "UPDATE messages SET delay_warned_at = now() WHERE id = $1 AND delay_warned_at IS NULL "
      "  AND envelope_from <> '' AND received_at < now() - make_interval(secs => $2) RETURNING id",
      msg_id, static_cast<double>(warn_after.count()));
  if (due.empty()) return std::nullopt;
  auto original = load_original(tx, msg_id);
  auto rows = tx.exec_params(
      "SELECT recipient, original_rcpt, COALESCE(last_error, ''), extract(epoch FROM now())::bigint "
      "FROM deliveries WHERE message_id = $1 AND status = 'pending' ORDER BY id",
      msg_id);
  if (rows.empty()) return std::nullopt;
  dsn::Report report;
  report.action = dsn::Action::delayed;
  report.msg_id = msg_id;
  for (const auto& row : rows)
    report.recipients.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
                                 static_cast<std::time_t>(row[3].as<std::int64_t>())});
  auto dsn_id = queue_report(tx, report, original, reporting_mta);
  log::info("msg={} delay warning msg={} queued to <{}> for {} recipients", qid(msg_id), qid(dsn_id),
            original.envelope_from, rows.size());
  return dsn_id;
}

}  // namespace wsmtp::common::pg
