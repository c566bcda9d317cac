// Executes one StoreOp. Kept apart from the thread pool so the mapping from op to
// Store call is unit-testable against a fake store.
#include "store_op.h"

#include <exception>

#include <fmt/format.h>

#include "queue_id.h"
#include "queue_ids.h"

namespace wsmtp::listener {

namespace {
template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;
}  // namespace

StoreResult run_store_op(common::Store& store, const StoreOp& op, QueueIdReserve* ids) noexcept {
  StoreResult result;
  try {
    std::visit(Overloaded{
                   [&](const CheckRecipient& o) { result.verdict = store.check_recipient(o.address, o.domain); },
                   [&](const TakeQueueId&) {
                     result.msg_id = ids ? ids->take_or_reserve(store) : store.reserve_message_ids(1).at(0);
                   },
                   [&](const RefillQueueIds&) {
                     if (ids) ids->refill(store);
                   },
                   [&](const BeginMessage& o) { store.begin_message(o.msg_id, o.message); },
                   [&](const AppendBody& o) { store.append_body(o.msg_id, o.seq, o.bytes); },
                   [&](const CommitMessage& o) { store.commit_message(o.msg_id, o.size, o.fair_client, o.edits); },
                   [&](const AbortMessage& o) { store.abort_message(o.msg_id); },
                   [&](const StoreWhole& o) { store.store_messages({o.message}); },
                   [&](const VerifyUser& o) { result.verified = store.verify_user(o.username, o.password); },
               },
               op);
    result.ok = true;
  } catch (const std::exception& e) {
    result.ok = false;
    result.error = e.what();
  } catch (...) {
    // Not swallowed: the failure is reported as a failed op, so the client gets 451.
    result.ok = false;
    result.error = "unknown exception";
  }
  return result;
}

std::string describe(const StoreOp& op) {
  return std::visit(
      Overloaded{
          [](const CheckRecipient& o) { return fmt::format("check_recipient {}", o.address); },
          [](const TakeQueueId&) { return std::string("take_queue_id"); },
          [](const RefillQueueIds&) { return std::string("refill_queue_ids"); },
          [](const BeginMessage& o) { return fmt::format("msg={} begin_message", common::qid(o.msg_id)); },
          [](const AppendBody& o) { return fmt::format("msg={} append_body seq={}", common::qid(o.msg_id), o.seq); },
          [](const CommitMessage& o) { return fmt::format("msg={} commit", common::qid(o.msg_id)); },
          [](const AbortMessage& o) { return fmt::format("msg={} abort", common::qid(o.msg_id)); },
          [](const StoreWhole& o) { return fmt::format("msg={} store_whole", common::qid(o.message.msg_id)); },
          [](const VerifyUser&) { return std::string("verify_user"); },
      },
      op);
}

}  // namespace wsmtp::listener
