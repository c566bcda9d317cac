#include "transport_registry.h"

#include <algorithm>

#include "lmtp.h"
#include "maildir_transport.h"
#include "mbox_transport.h"
#include "relay.h"
#include "smtp_client.h"

namespace wsmtp::deliver {

void TransportRegistry::add(std::string name, std::unique_ptr<Transport> transport) {
  if (index_of(name) >= 0) return;
  entries_.emplace_back(std::move(name), std::move(transport));
}

int TransportRegistry::index_of(std::string_view name) const {
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].first == name) return static_cast<int>(i);
  return -1;
}

TransportRegistry standard_transports(const DeliverConfig& config, const std::string& host,
                                      const std::function<void()>& on_progress) {
  using Factory =
      std::unique_ptr<Transport> (*)(const DeliverConfig&, const std::string&, const std::function<void()>&);
  // Dispatch order: the local copies first (their fsyncs then overlap one
  // another, not a remote peer's replies), then the relay pools, then LMTP.
  static constexpr std::pair<std::string_view, Factory> kFactories[] = {
      {"maildir",
       [](const DeliverConfig& c, const std::string& h, const std::function<void()>&) -> std::unique_ptr<Transport> {
         return std::make_unique<MaildirTransport>(c, h);
       }},
      {"mbox",
       [](const DeliverConfig& c, const std::string&, const std::function<void()>&) -> std::unique_ptr<Transport> {
         return std::make_unique<MboxTransport>(c);
       }},
      {"relay",
       [](const DeliverConfig& c, const std::string&, const std::function<void()>& p) -> std::unique_ptr<Transport> {
         return std::make_unique<RelaySessions>(c, p);
       }},
      {"lmtp",
       [](const DeliverConfig& c, const std::string&, const std::function<void()>& p) -> std::unique_ptr<Transport> {
         return std::make_unique<LmtpSessions>(c, p);
       }},
  };
  TransportRegistry registry;
  for (const auto& [name, make] : kFactories)
    if (std::find(config.transports.begin(), config.transports.end(), name) != config.transports.end())
      registry.add(std::string(name), make(config, host, on_progress));
  return registry;
}

std::chrono::seconds longest_quiet_step(const DeliverConfig& config) {
  const common::smtp::ClientOptions smtp_defaults;
  return std::max({config.relay_connect_timeout, config.relay_command_timeout, smtp_defaults.data_timeout,
                   config.mbox_lock_timeout}) +
         std::chrono::seconds(60);
}

}  // namespace wsmtp::deliver
