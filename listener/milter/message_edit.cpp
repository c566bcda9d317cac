#include "milter/message_edit.h"

#include <algorithm>
#include <stdexcept>

#include "ascii.h"

namespace wsmtp::listener::milter {

std::string_view HeaderSection::Field::value() const {
  std::string_view v(text);
  v.remove_prefix(std::min(v.size(), name.size() + 1));
  if (v.size() >= 2 && v.substr(v.size() - 2) == "\r\n") v.remove_suffix(2);
  return v;
}

HeaderSection HeaderSection::parse(std::string_view header) {
  HeaderSection section;
  while (!header.empty()) {
    auto eol = header.find("\r\n");
    std::string_view line = header.substr(0, eol == std::string_view::npos ? header.size() : eol + 2);
    header.remove_prefix(line.size());
    if (line == "\r\n") {
      section.ends_with_blank_line_ = true;
      break;
    }
    bool continuation = (line.front() == ' ' || line.front() == '\t') && !section.fields_.empty();
    if (continuation) {
      section.fields_.back().text.append(line);
      continue;
    }
    auto colon = line.find(':');
    Field field;
    field.name = std::string(colon == std::string_view::npos ? std::string_view() : line.substr(0, colon));
    field.text = std::string(line);
    if (field.text.size() < 2 || field.text.substr(field.text.size() - 2) != "\r\n") field.text.append("\r\n");
    section.fields_.push_back(std::move(field));
  }
  return section;
}

std::string make_field(std::string_view name, std::string_view value) {
  std::string text(name);
  text += ':';
  if (!value.empty() && value.front() != ' ' && value.front() != '\t') text += ' ';
  for (char ch : value) {
    if (ch == '\n') {
      if (!text.empty() && text.back() == '\r') text.pop_back();
      text += "\r\n";
    } else {
      text += ch;
    }
  }
  text += "\r\n";
  return text;
}

void HeaderSection::apply(const Reply& change) {
  Field field{change.name, make_field(change.name, change.value)};
  switch (change.kind) {
    case Reply::Kind::add_header:
      fields_.push_back(std::move(field));
      return;
    case Reply::Kind::insert_header: {
      auto at = std::min<std::size_t>(change.index, fields_.size());
      fields_.insert(fields_.begin() + static_cast<std::ptrdiff_t>(at), std::move(field));
      return;
    }
    case Reply::Kind::change_header: {
      // 1-based; Sendmail and Postfix take 0 as the first occurrence too.
      const std::uint32_t wanted = std::max<std::uint32_t>(change.index, 1);
      std::uint32_t seen = 0;
      for (auto it = fields_.begin(); it != fields_.end(); ++it) {
        if (!common::iequals(it->name, change.name) || ++seen != wanted) continue;
        if (change.value.empty())
          fields_.erase(it);
        else
          *it = std::move(field);
        return;
      }
      // libmilter: an index past the last such field adds one; deleting a
      // field that is not there changes nothing.
      if (!change.value.empty()) fields_.push_back(std::move(field));
      return;
    }
    default:
      throw std::invalid_argument("HeaderSection::apply: not a header change");
  }
}

std::string HeaderSection::str() const {
  std::string out;
  for (const auto& f : fields_) out += f.text;
  if (ends_with_blank_line_) out += "\r\n";
  return out;
}

std::string bare_address(std::string_view address) {
  address = common::trim_blanks(address);
  if (address.size() >= 2 && address.front() == '<' && address.back() == '>')
    address = address.substr(1, address.size() - 2);
  return std::string(address);
}

void apply_envelope_change(const Reply& change, std::string& sender, std::vector<std::string>& recipients) {
  auto address = bare_address(change.address);
  switch (change.kind) {
    case Reply::Kind::change_from:
      sender = address;
      return;
    case Reply::Kind::add_rcpt:
    case Reply::Kind::add_rcpt_with_args:
      if (!address.empty() && std::none_of(recipients.begin(), recipients.end(),
                                           [&](const std::string& r) { return common::iequals(r, address); }))
        recipients.push_back(address);
      return;
    case Reply::Kind::delete_rcpt:
      std::erase_if(recipients, [&](const std::string& r) { return common::iequals(r, address); });
      return;
    default:
      throw std::invalid_argument("apply_envelope_change: not an envelope change");
  }
}

std::string normalize_line_ends(std::string_view body) {
  std::string out;
  out.reserve(body.size() + body.size() / 32);
  for (std::size_t i = 0; i < body.size(); ++i) {
    char ch = body[i];
    if (ch == '\r') {
      out += "\r\n";
      if (i + 1 < body.size() && body[i + 1] == '\n') ++i;
    } else if (ch == '\n') {
      out += "\r\n";
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace wsmtp::listener::milter
