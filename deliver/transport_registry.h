// The transports a deliverer serves, keyed by the name stored in each
// delivery row (deliveries.transport), in the order the batch loop dispatches
// them: local copies first, so their fsyncs are not queued behind remote
// peers. Building a transport is the only place that knows which class
// serves which name.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config.h"
#include "transport.h"

namespace wsmtp::deliver {

class TransportRegistry {
 public:
  // Dispatch order is the order of add(). A name added twice keeps the first.
  void add(std::string name, std::unique_ptr<Transport> transport);

  // The position of the transport serving `name` (an index into the dispatch
  // order); -1 if none does.
  int index_of(std::string_view name) const;
  Transport& at(std::size_t index) const { return *entries_.at(index).second; }
  std::size_t size() const { return entries_.size(); }

 private:
  std::vector<std::pair<std::string, std::unique_ptr<Transport>>> entries_;
};

// The transports config.transports names, built for this deliverer: `host`
// goes into Maildir file names, on_progress is called as remote conversations
// and local copies move on (the lease keeper's progress). Throws nothing the
// configuration check has not ruled out.
TransportRegistry standard_transports(const DeliverConfig& config, const std::string& host,
                                      const std::function<void()>& on_progress);

// The longest a healthy deliverer waits on one step of its work without
// progress: its longest relay/LMTP timeout (connect, command, the final dot)
// or mbox lock wait, plus a minute. Its leases stop being renewed past it.
std::chrono::seconds longest_quiet_step(const DeliverConfig& config);

}  // namespace wsmtp::deliver
