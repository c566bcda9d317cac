#include "db/bounces.h"

#include <ctime>

#include "dsn.h"
#include "log.h"
#include "queue_id.h"
#include "pg/body.h"
#include "pg/transitions.h"

namespace wsmtp::common::pg {
namespace {

constexpr std::size_t kMaxHeaderBytes = 64 * 1024;

// RFC 3462 text/rfc822-headers: the report quotes the headers, never the body.
std::string original_header_section(pqxx::transaction_base& tx, std::int64_t msg_id) {
  return dsn::header_section(read_body_start(tx, msg_id, kMaxHeaderBytes), kMaxHeaderBytes);
}

}  // namespace

std::int64_t queue_list_bounce_report(pqxx::transaction_base& tx, std::int64_t msg_id,
                                      const std::string& bounce_address, const std::vector<ListBounce>& bounces,
                                      const std::string& reporting_mta) {
  dsn::Report report;
  report.action = dsn::Action::failed;
  report.reporting_mta = reporting_mta;
  report.recipient = bounce_address;
  report.msg_id = msg_id;
  report.arrival = static_cast<std::time_t>(
      tx.exec_params1(
            "SELECT extract(epoch FROM COALESCE(received_at, created_at))::bigint FROM messages WHERE id = $1",
            msg_id)[0]
          .as<std::int64_t>());
  report.now = std::time(nullptr);
  report.original_headers = original_header_section(tx, msg_id);
  for (const auto& b : bounces) report.recipients.push_back({b.recipient, b.original_rcpt, b.reason, 0});
  NewMessage m;
  m.envelope_from = "";  // RFC 5321 §4.5.5: reports are sent with the null sender
  m.client_helo = reporting_mta;
  m.received_by = "wroute-dsn";
  m.recipients = {bounce_address};
  auto dsn_id = create_generated_message(tx, m, dsn::compose(report), "list bounce dsn", msg_id);
  tx.exec_params0(
      "UPDATE deliveries SET dsn_message_id = $2 WHERE message_id = $1 AND status = 'bounced' "
      "  AND dsn_message_id IS NULL AND transport = 'bounce' AND envelope_from_override = $3",
      msg_id, dsn_id, bounce_address);
  log::info("msg={} DSN msg={} queued to list bounce address <{}> for {} refused members", qid(msg_id), qid(dsn_id),
            bounce_address, bounces.size());
  return dsn_id;
}

}  // namespace wsmtp::common::pg
