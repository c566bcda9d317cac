// The per-stage rules of the milter protocol (libmilter's SMFIP_* and SMFIF_*
// bits, as Postfix's milter8.c applies them), for Chain.
#include "milter/stage_rules.h"

#include <sstream>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace wsmtp::listener::milter {

namespace {

struct StageBits {
  std::uint32_t off;       // SMFIP_NO*: 0 = cannot be turned off
  std::uint32_t no_reply;  // SMFIP_NR_*: 0 = always answered
};

StageBits bits(Stage stage) {
  switch (stage) {
    case Stage::connect:
      return {step::no_connect, step::no_reply_connect};
    case Stage::helo:
      return {step::no_helo, step::no_reply_helo};
    case Stage::mail:
      return {step::no_mail, step::no_reply_mail};
    case Stage::rcpt:
      return {step::no_rcpt, step::no_reply_rcpt};
    case Stage::data:
      return {step::no_data, step::no_reply_data};
    case Stage::header:
      return {step::no_headers, step::no_reply_header};
    case Stage::end_of_headers:
      return {step::no_end_of_headers, step::no_reply_end_of_headers};
    case Stage::body:
      return {step::no_body, step::no_reply_body};
    case Stage::end_of_message:
      return {0, 0};
    case Stage::abort:
      return {0, 0};
  }
  return {0, 0};
}

// The stage's macro list (SMFIM_*) and the command its SMFIC_MACRO names;
// header, body and abort carry no macros.
std::optional<std::pair<MacroStage, Command>> macro_stage(Stage stage) {
  switch (stage) {
    case Stage::connect:
      return std::pair{MacroStage::connect, Command::connect};
    case Stage::helo:
      return std::pair{MacroStage::helo, Command::helo};
    case Stage::mail:
      return std::pair{MacroStage::mail, Command::mail};
    case Stage::rcpt:
      return std::pair{MacroStage::rcpt, Command::rcpt};
    case Stage::data:
      return std::pair{MacroStage::data, Command::data};
    case Stage::end_of_headers:
      return std::pair{MacroStage::end_of_headers, Command::end_of_headers};
    case Stage::end_of_message:
      return std::pair{MacroStage::end_of_message, Command::end_of_body};
    default:
      return std::nullopt;
  }
}

// "{i}" and "i" name the same macro (Sendmail accepts both spellings).
std::string_view bare_name(std::string_view name) {
  if (name.size() >= 2 && name.front() == '{' && name.back() == '}') return name.substr(1, name.size() - 2);
  return name;
}

std::string header_value(std::string_view value, const Negotiation& negotiation) {
  if (!(negotiation.steps & step::header_leading_space) && !value.empty() && value.front() == ' ') {
    value.remove_prefix(1);
  }
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\r' && i + 1 < value.size() && value[i + 1] == '\n') continue;
    out.push_back(value[i]);
  }
  return out;
}

}  // namespace

std::string_view stage_name(Stage stage) {
  switch (stage) {
    case Stage::connect:
      return "connect";
    case Stage::helo:
      return "helo";
    case Stage::mail:
      return "mail";
    case Stage::rcpt:
      return "rcpt";
    case Stage::data:
      return "data";
    case Stage::header:
      return "header";
    case Stage::end_of_headers:
      return "end_of_headers";
    case Stage::body:
      return "body";
    case Stage::end_of_message:
      return "end_of_message";
    case Stage::abort:
      return "abort";
  }
  return "unknown";
}

bool message_stage(Stage stage) { return stage != Stage::connect && stage != Stage::helo && stage != Stage::abort; }

bool stage_off(Stage stage, const Negotiation& negotiation) {
  const std::uint32_t off = bits(stage).off;
  return off != 0 && (negotiation.steps & off) != 0;
}

bool stage_answered(Stage stage, const Negotiation& negotiation) {
  if (stage == Stage::abort) return false;
  const std::uint32_t no_reply = bits(stage).no_reply;
  return no_reply == 0 || (negotiation.steps & no_reply) == 0;
}

std::chrono::milliseconds stage_timeout(Stage stage, const MilterSpec& spec) {
  switch (stage) {
    case Stage::header:
    case Stage::end_of_headers:
    case Stage::body:
    case Stage::end_of_message:
      return spec.content_timeout;
    default:
      return spec.command_timeout;
  }
}

Macros wanted_macros(const Macros& macros, const std::optional<std::string>& wanted) {
  if (!wanted) return macros;
  std::vector<std::string> names;
  std::istringstream words(*wanted);
  for (std::string word; words >> word;) names.emplace_back(bare_name(word));
  Macros out;
  for (const auto& macro : macros) {
    for (const auto& name : names) {
      if (bare_name(macro.first) == name) {
        out.push_back(macro);
        break;
      }
    }
  }
  return out;
}

std::string stage_packets(const Event& event, const Negotiation& negotiation) {
  std::string packets;
  if (auto ms = macro_stage(event.stage)) {
    Macros macros = wanted_macros(event.macros, negotiation.macro_lists[static_cast<int>(ms->first)]);
    if (!macros.empty()) packets = encode_macros(ms->second, macros);
  }
  switch (event.stage) {
    case Stage::connect:
      packets += encode_connect(event.client_name, event.family, event.port, event.address);
      break;
    case Stage::helo:
      packets += encode_helo(event.text);
      break;
    case Stage::mail:
      packets += encode_mail(event.args);
      break;
    case Stage::rcpt:
      packets += encode_rcpt(event.args);
      break;
    case Stage::data:
      packets += encode_bare(Command::data);
      break;
    case Stage::header:
      packets += encode_header(event.text, header_value(event.value, negotiation));
      break;
    case Stage::end_of_headers:
      packets += encode_bare(Command::end_of_headers);
      break;
    case Stage::body:
      packets += encode_body(event.bytes);
      break;
    case Stage::end_of_message:
      packets += encode_bare(Command::end_of_body);
      break;
    case Stage::abort:
      packets += encode_bare(Command::abort);
      break;
  }
  return packets;
}

bool modification_allowed(Reply::Kind kind, std::uint32_t actions) {
  switch (kind) {
    case Reply::Kind::add_header:
    case Reply::Kind::insert_header:
      return actions & action::add_headers;
    case Reply::Kind::change_header:
      return actions & action::change_headers;
    case Reply::Kind::add_rcpt:
      return actions & action::add_rcpt;
    case Reply::Kind::add_rcpt_with_args:
      return actions & action::add_rcpt_with_args;
    case Reply::Kind::delete_rcpt:
      return actions & action::delete_rcpt;
    case Reply::Kind::change_from:
      return actions & action::change_from;
    case Reply::Kind::replace_body:
      return actions & action::change_body;
    case Reply::Kind::quarantine:
      return actions & action::quarantine;
    default:
      return false;
  }
}

}  // namespace wsmtp::listener::milter
