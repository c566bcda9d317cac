// The stored message of a claimed message, as every transport reads it: from
// the claim for small mail, streamed from the database for the rest.
#pragma once
#include <functional>
#include <string_view>

#include <pqxx/pqxx>

#include "pg/transitions.h"

namespace wsmtp::deliver {

// Feeds the stored message to sink: from the claim when it came with it (small
// mail, read with the claim in one query per batch), else streamed from the
// database a few chunks at a time, so memory stays bounded for big messages.
void stream_claim_body(pqxx::connection& conn, const common::pg::DeliveryClaim& claim,
                       const std::function<void(std::string_view)>& sink);

}  // namespace wsmtp::deliver
