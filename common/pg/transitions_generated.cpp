// new -> 1 for messages WSMTP generates itself (transitions_generated.h).
#include "pg/transitions_generated.h"

#include "log.h"
#include "queue_id.h"
#include "pg/body.h"
#include "pg/sql_util.h"

namespace wsmtp::common::pg {

std::int64_t create_generated_message(pqxx::transaction_base& tx, const NewMessage& m, std::string_view body,
                                      std::string_view kind, std::int64_t origin_msg_id) {
  auto id =
      tx.exec_params1(
            "INSERT INTO messages (state, envelope_from, client_addr, client_helo, received_by, size, received_at) "
            "VALUES (1, $1, NULL, $2, $3, $4, now()) RETURNING id",
            m.envelope_from, m.client_helo, m.received_by, static_cast<std::int64_t>(body.size()))[0]
          .as<std::int64_t>();
  tx.exec_params0(
      "INSERT INTO recipients (message_id, seq, address) "
      "SELECT $1, r.ord - 1, r.address FROM unnest($2::text[]) WITH ORDINALITY AS r(address, ord)",
      id, text_array(m.recipients));
  constexpr std::size_t kChunk = 64 * 1024;
  for (std::size_t off = 0, seq = 0; off < body.size() || seq == 0; off += kChunk, ++seq)
    append_body_chunk(tx, id, static_cast<int>(seq), body.substr(off, kChunk));
  log::info("msg={} {} for msg={} created in state RECEIVED by {} size={} rcpts={}", qid(id), kind, qid(origin_msg_id),
            m.received_by, body.size(), m.recipients.size());
  return id;
}

}  // namespace wsmtp::common::pg
