// The milters of one session: a queue of Events and, per milter, a cursor
// into it. Each milter gets one event at a time and its reply before the
// next (as Postfix and Sendmail talk to libmilter); awaited events go to the
// milters one after the other, so the first that decides ends the event.
// Non-awaited events (headers, body) run ahead of the session, bounded by
// kBackpressure. Knows the protocol's stages and replies, not SMTP sessions:
// the Verdicts go to whoever submitted the events, always from an event.
#include "milter/chain.h"

#include <event2/event.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "handles.h"
#include "log.h"
#include "milter/milter_config.h"
#include "milter/milter_connection.h"
#include "milter/stage_rules.h"
#include "replies.h"

namespace wsmtp::listener::milter {

namespace {

// A milter's socket takes one more stage only below this many unsent bytes:
// a milter that does not read holds at most one body chunk of ours.
constexpr std::size_t kMaxUnsent = 64 * 1024;
// Bookkeeping per queued event, so a flood of tiny events also counts.
constexpr std::size_t kEntryOverhead = 64;

struct Entry {
  std::uint64_t seq = 0;
  Event event;
  std::size_t size = 0;
  // Awaited events: the first milter (index) that has not answered yet.
  std::size_t turn = 0;
  std::optional<Verdict> verdict;
  bool emitted = false;
  // end_of_message: the changes of the milters that have continued so far.
  std::vector<Reply> changes;
  std::vector<std::string> changed_by;
};

enum class Link { closed, negotiating, ready, failed };

struct Milter {
  const MilterSpec* spec = nullptr;
  std::unique_ptr<MilterConnection> conn;
  Link link = Link::closed;
  std::uint64_t cursor = 0;  // seq of the next event for this milter
  bool waiting = false;      // its reply to the event at cursor is due
  // Accepted (or refused) the connection: nothing more is sent this session.
  bool session_over = false;
  // Message state, reset by mail, abort and the end of end_of_message.
  bool in_message = false;  // saw this message's mail and has not finished it
  bool accepted_message = false;
  bool skip_body = false;
  std::optional<Verdict> message_verdict;  // its refusal at header/body
  std::vector<Reply> changes;              // end_of_message, before its verdict

  void reset_message() {
    in_message = accepted_message = skip_body = false;
    message_verdict.reset();
    changes.clear();
  }
};

std::size_t event_size(const Event& e) {
  std::size_t size = kEntryOverhead + e.bytes.size() + e.text.size() + e.value.size() + e.client_name.size();
  for (const auto& a : e.args) size += a.size();
  for (const auto& m : e.macros) size += m.first.size() + m.second.size();
  return size;
}

// A verdict reply (continue, accept, skip and modifications are not verdicts).
std::optional<Verdict> refusal(const Reply& r) {
  Verdict v;
  switch (r.kind) {
    case Reply::Kind::reject:
      v.kind = Verdict::Kind::reject;
      break;
    case Reply::Kind::tempfail:
      v.kind = Verdict::Kind::tempfail;
      break;
    case Reply::Kind::discard:
      v.kind = Verdict::Kind::discard;
      break;
    case Reply::Kind::shutdown:
    case Reply::Kind::conn_fail:
      v.kind = Verdict::Kind::shutdown;
      break;
    case Reply::Kind::reply_code:
      v.kind = r.smtp.is_permanent() ? Verdict::Kind::reject : Verdict::Kind::tempfail;
      v.reply = r.smtp;
      break;
    default:
      return std::nullopt;
  }
  return v;
}

Event abort_event() {
  Event e;
  e.stage = Stage::abort;
  return e;
}

Verdict default_verdict(Verdict::Kind kind, common::smtp::Reply reply) {
  Verdict v;
  v.kind = kind;
  v.reply = std::move(reply);
  return v;
}

bool is_modification(Reply::Kind kind) { return modification_allowed(kind, action::all); }

}  // namespace

struct Chain::Impl {
  Impl(event_base* b, std::shared_ptr<const MilterSpecs> s, std::string t, Callbacks c)
      : base(b), specs(std::move(s)), tag(std::move(t)), callbacks(std::move(c)) {}

  event_base* base;
  std::shared_ptr<const MilterSpecs> specs;
  std::string tag;
  Callbacks callbacks;
  std::vector<Milter> milters;
  std::deque<Entry> entries;
  std::uint64_t next_seq = 0;
  std::uint64_t emit_from = 0;  // settle(): the first entry that may still owe a verdict
  std::size_t backlog = 0;
  bool above = false;
  bool drained_due = false;
  std::vector<Verdict> ready;
  common::EventPtr notify;
  // Co-owned by notify_cb while it runs callbacks, which may destroy the
  // chain: false from the destructor on, so it stops at once.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  bool pumping = false;
  bool again = false;

  static void notify_cb(evutil_socket_t, short, void* self) noexcept;

  Entry* find(std::uint64_t seq) {
    if (entries.empty() || seq < entries.front().seq) return nullptr;
    const std::uint64_t index = seq - entries.front().seq;
    return index < entries.size() ? &entries[index] : nullptr;
  }
  void open_all();
  void push(Event event);
  void pump();
  void advance(std::size_t i);
  void dispatch(std::size_t i, Entry& e);
  void after_decided(Milter& m, const Entry& e);
  void apply_default(std::size_t i, Entry& e);
  void pass(std::size_t i, Entry& e);
  void decide(std::size_t i, Entry& e, Verdict v);
  void send(Milter& m, const Event& event);
  void on_reply(std::size_t i, Reply r);
  void on_failed(std::size_t i, const std::string& why);
  void broken(std::size_t i, const std::string& why);
  void settle();
};

// --- submitting ----------------------------------------------------------------

void Chain::Impl::open_all() {
  for (std::size_t i = 0; i < milters.size(); ++i) {
    milters[i].link = Link::negotiating;
    milters[i].conn->open();
  }
}

void Chain::Impl::push(Event event) {
  Entry e;
  e.seq = next_seq++;
  e.size = event_size(event);
  e.event = std::move(event);
  backlog += e.size;
  entries.push_back(std::move(e));
  if (backlog > kBackpressure) above = true;
}

// --- moving the cursors --------------------------------------------------------

void Chain::Impl::pump() {
  if (pumping) {
    again = true;
    return;
  }
  // Reset on a throw too (an encoder refusing an event), or the chain would stop.
  struct Pumping {
    bool& flag;
    explicit Pumping(bool& f) : flag(f) { flag = true; }
    ~Pumping() { flag = false; }
  } pumping_now(pumping);
  do {
    again = false;
    for (std::size_t i = 0; i < milters.size(); ++i) advance(i);
  } while (again);
  settle();
}

void Chain::Impl::advance(std::size_t i) {
  Milter& m = milters[i];
  for (;;) {
    if (m.waiting || m.link == Link::closed || m.link == Link::negotiating) return;
    if (m.conn->unsent() > kMaxUnsent) return;  // resumes from the drained handler
    Entry* e = find(m.cursor);
    if (!e) return;
    if (e->event.awaited) {
      if (e->verdict) {
        after_decided(m, *e);
        ++m.cursor;
        continue;
      }
      if (e->turn != i) return;  // an earlier milter has not answered this event yet
    }
    dispatch(i, *e);
  }
}

void Chain::Impl::dispatch(std::size_t i, Entry& e) {
  Milter& m = milters[i];
  const Stage stage = e.event.stage;
  if (e.event.milter >= 0 && static_cast<std::size_t>(e.event.milter) != i) return pass(i, e);
  if (stage == Stage::abort) {
    if (m.in_message && m.link == Link::ready) send(m, e.event);
    m.reset_message();
    return pass(i, e);
  }
  if (stage == Stage::mail) {
    // A message the session left without abort still ends for the milter first.
    if (m.in_message && m.link == Link::ready) send(m, abort_event());
    m.reset_message();
    m.in_message = m.link == Link::ready && !m.session_over;
  }
  if (m.link == Link::failed) return apply_default(i, e);
  if (m.session_over) return pass(i, e);
  if (message_stage(stage) && m.accepted_message) return pass(i, e);
  if (message_stage(stage) && m.message_verdict) {
    if (stage != Stage::end_of_message) return pass(i, e);
    Verdict v = *m.message_verdict;
    send(m, abort_event());
    m.reset_message();
    return decide(i, e, std::move(v));
  }
  if (stage == Stage::body && m.skip_body) return pass(i, e);
  const Negotiation& n = m.conn->negotiation();
  if (stage_off(stage, n)) return pass(i, e);
  send(m, e.event);
  if (!stage_answered(stage, n)) return pass(i, e);
  m.waiting = true;
  m.conn->await_reply(stage_timeout(stage, *m.spec));
}

// A later milter reaches an event an earlier one decided: it is not asked,
// and a message that ended there ends for it too.
void Chain::Impl::after_decided(Milter& m, const Entry& e) {
  const Stage stage = e.event.stage;
  if (stage != Stage::end_of_message && stage != Stage::mail) return;
  if (m.in_message && m.link == Link::ready) send(m, abort_event());
  m.reset_message();
}

void Chain::Impl::apply_default(std::size_t i, Entry& e) {
  const Milter& m = milters[i];
  if (!e.event.awaited) return pass(i, e);
  switch (m.spec->default_action) {
    case DefaultAction::tempfail:
      return decide(i, e, default_verdict(Verdict::Kind::tempfail, common::smtp::replies::milter_tempfail()));
    case DefaultAction::reject:
      return decide(i, e, default_verdict(Verdict::Kind::reject, common::smtp::replies::milter_command_rejected()));
    case DefaultAction::quarantine:
      if (e.event.stage == Stage::end_of_message) {
        Reply quarantine;
        quarantine.kind = Reply::Kind::quarantine;
        quarantine.reason = "milter unavailable";
        e.changes.push_back(std::move(quarantine));
        e.changed_by.push_back(m.spec->name);
      }
      return pass(i, e);
    case DefaultAction::accept:
      return pass(i, e);
  }
}

void Chain::Impl::pass(std::size_t i, Entry& e) {
  ++milters[i].cursor;
  again = true;
  if (!e.event.awaited) return;
  e.turn = i + 1;
  if (e.turn == milters.size() && !e.verdict) {
    e.verdict.emplace();
    e.verdict->changes = std::move(e.changes);
    e.verdict->changed_by = std::move(e.changed_by);
  }
}

void Chain::Impl::decide(std::size_t i, Entry& e, Verdict v) {
  v.milter = milters[i].spec->name;
  e.verdict = std::move(v);
  ++milters[i].cursor;
  again = true;
}

void Chain::Impl::send(Milter& m, const Event& event) {
  m.conn->send(stage_packets(event, m.conn->negotiation()), stage_timeout(event.stage, *m.spec));
}

// --- replies and failures ------------------------------------------------------

void Chain::Impl::on_reply(std::size_t i, Reply r) {
  Milter& m = milters[i];
  Entry* e = m.waiting ? find(m.cursor) : nullptr;
  if (!e) return broken(i, "a reply to nothing we sent");
  const Stage stage = e->event.stage;
  const Negotiation& n = m.conn->negotiation();
  if (is_modification(r.kind)) {
    if (stage != Stage::end_of_message) return broken(i, "a modification before end of message");
    if (!modification_allowed(r.kind, n.actions)) return broken(i, "a modification it did not negotiate");
    m.changes.push_back(std::move(r));
    m.conn->await_reply(stage_timeout(stage, *m.spec));
    return;
  }
  m.waiting = false;
  if (r.kind == Reply::Kind::skip) {
    if (stage != Stage::body || !(n.steps & step::skip)) return broken(i, "skip outside the body or not negotiated");
    m.skip_body = true;
    pass(i, *e);
  } else if (r.kind == Reply::Kind::continue_ || r.kind == Reply::Kind::accept) {
    if (stage == Stage::end_of_message) {
      for (auto& change : m.changes) {
        e->changes.push_back(std::move(change));
        e->changed_by.push_back(m.spec->name);
      }
      m.reset_message();
    } else if (r.kind == Reply::Kind::accept) {
      // SMFIR_ACCEPT at connect or HELO is for the session, later for the
      // message (libmilter then forgets the message, so no abort follows).
      if (stage == Stage::connect || stage == Stage::helo) {
        m.session_over = true;
      } else {
        m.reset_message();
        m.accepted_message = true;
      }
    }
    pass(i, *e);
  } else if (std::optional<Verdict> v = refusal(r)) {
    if (stage == Stage::connect) m.session_over = true;
    if (!e->event.awaited) {
      if (!m.message_verdict) m.message_verdict = std::move(*v);
      pass(i, *e);
    } else {
      if (stage == Stage::end_of_message || v->kind == Verdict::Kind::discard) m.reset_message();
      if (v->kind == Verdict::Kind::discard && stage != Stage::end_of_message) m.accepted_message = true;
      decide(i, *e, std::move(*v));
    }
  } else {
    return broken(i, "an unexpected reply");
  }
  pump();
}

// The chain found the milter broken itself: close its socket, then as a failure.
void Chain::Impl::broken(std::size_t i, const std::string& why) {
  milters[i].conn->close();
  on_failed(i, "protocol error: " + why);
}

void Chain::Impl::on_failed(std::size_t i, const std::string& why) {
  Milter& m = milters[i];
  std::string_view stage = "negotiation";
  if (m.link == Link::ready) {
    const Entry* e = find(m.cursor);
    stage = e ? stage_name(e->event.stage) : "idle";
  }
  log::warn("{} milter={} stage={}: {}; default action {}", tag, m.spec->name, stage, why,
            default_action_name(m.spec->default_action));
  m.link = Link::failed;
  m.waiting = false;
  m.reset_message();
  pump();
}

// --- answering the session -----------------------------------------------------

void Chain::Impl::settle() {
  bool due = false;
  // Verdicts go out in submission order. Everything before emit_from is
  // answered or not awaited, so a long run of headers is not scanned again.
  if (!entries.empty()) emit_from = std::max(emit_from, entries.front().seq);
  for (Entry* e = find(emit_from); e; e = find(emit_from)) {
    if (e->event.awaited) {
      if (!e->verdict) break;
      ready.push_back(*e->verdict);
      e->emitted = true;
      due = true;
    }
    ++emit_from;
  }
  while (!entries.empty()) {
    const Entry& front = entries.front();
    if (front.event.awaited && !front.emitted) break;
    bool everyone_past = true;
    for (const auto& m : milters) everyone_past = everyone_past && m.cursor > front.seq;
    if (!everyone_past) break;
    backlog -= front.size;
    entries.pop_front();
  }
  if (above && backlog <= kBackpressure) {
    above = false;
    drained_due = due = true;
  }
  if (due) event_active(notify.get(), EV_READ, 0);
}

void Chain::Impl::notify_cb(evutil_socket_t, short, void* self) noexcept {
  auto& impl = *static_cast<Impl*>(self);
  const std::shared_ptr<bool> alive = impl.alive;
  try {
    std::vector<Verdict> verdicts = std::exchange(impl.ready, {});
    const bool drained = std::exchange(impl.drained_due, false);
    for (auto& v : verdicts) {
      if (impl.callbacks.verdict) impl.callbacks.verdict(std::move(v));
      if (!*alive) return;
    }
    if (drained && impl.callbacks.drained) impl.callbacks.drained();
  } catch (const std::exception& e) {
    log::error("{} milter verdict: {}", *alive ? impl.tag : std::string("?"), e.what());
  }
}

// --- Chain -----------------------------------------------------------------------

Chain::Chain(event_base* base, std::shared_ptr<const MilterSpecs> milters, std::string log_tag, Callbacks callbacks)
    : impl_(std::make_unique<Impl>(base, std::move(milters), std::move(log_tag), std::move(callbacks))) {
  Impl& impl = *impl_;
  impl.notify.reset(event_new(base, -1, 0, &Impl::notify_cb, &impl));
  if (!impl.notify) throw std::runtime_error("event_new failed for a milter chain");
  impl.milters.resize(impl.specs->size());
  for (std::size_t i = 0; i < impl.milters.size(); ++i) {
    Milter& m = impl.milters[i];
    m.spec = &(*impl.specs)[i];
    MilterConnection::Handlers handlers{
        .negotiated =
            [&impl, i] {
              impl.milters[i].link = Link::ready;
              impl.pump();
            },
        .reply = [&impl, i](Reply r) { impl.on_reply(i, std::move(r)); },
        .failed = [&impl, i](const std::string& why) { impl.on_failed(i, why); },
        .drained = [&impl] { impl.pump(); },
    };
    m.conn = std::make_unique<MilterConnection>(base, *m.spec, std::move(handlers));
  }
}

Chain::~Chain() {
  *impl_->alive = false;
  // The connections go first (SMFIC_QUIT), then the notify event: after this
  // no libevent callback points into the chain.
  impl_->milters.clear();
  impl_->notify.reset();
}

void Chain::submit(Event event) {
  Impl& impl = *impl_;
  if (impl.next_seq == 0) impl.open_all();
  if (event.stage == Stage::body && event.bytes.size() > kMaxBodyChunk) {
    // libmilter's packet limit: one body event becomes several SMFIC_BODY.
    for (std::size_t at = 0; at < event.bytes.size(); at += kMaxBodyChunk) {
      Event piece;
      piece.stage = Stage::body;
      piece.bytes = event.bytes.substr(at, kMaxBodyChunk);
      impl.push(std::move(piece));
    }
  } else {
    impl.push(std::move(event));
  }
  impl.pump();
}

std::size_t Chain::backlog() const { return impl_->backlog; }

}  // namespace wsmtp::listener::milter
