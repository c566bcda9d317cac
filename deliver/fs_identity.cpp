#include "fs_identity.h"

#include <sys/fsuid.h>

#include "log.h"

namespace wsmtp::deliver {
namespace {

// setfsuid/setfsgid report the previous id and never fail visibly: asking
// with an invalid id (-1) changes nothing and tells the current one.
constexpr auto kQuery = static_cast<uid_t>(-1);

uid_t current_fsuid() { return static_cast<uid_t>(::setfsuid(kQuery)); }
gid_t current_fsgid() { return static_cast<gid_t>(::setfsgid(static_cast<gid_t>(-1))); }

}  // namespace

std::optional<FsIdentity> FsIdentity::assume(uid_t uid, gid_t gid) {
  if (uid == 0) return std::nullopt;
  const uid_t old_uid = current_fsuid();
  const gid_t old_gid = current_fsgid();
  // The gid first: changing the fsuid away from 0 drops the file capabilities,
  // and CAP_SETGID is needed for the gid either way.
  ::setfsgid(gid);
  if (current_fsgid() != gid) return std::nullopt;
  ::setfsuid(uid);
  if (current_fsuid() != uid) {
    ::setfsgid(old_gid);
    return std::nullopt;
  }
  return FsIdentity(old_uid, old_gid);
}

FsIdentity::FsIdentity(FsIdentity&& other) noexcept
    : previous_uid_(other.previous_uid_), previous_gid_(other.previous_gid_), active_(other.active_) {
  other.active_ = false;
}

FsIdentity::~FsIdentity() {
  if (!active_) return;
  ::setfsuid(previous_uid_);
  ::setfsgid(previous_gid_);
  // A thread left writing files as a mailbox owner would write the next
  // mailbox, or the Maildirs, as that user: a broken install, not a retry.
  if (current_fsuid() != previous_uid_ || current_fsgid() != previous_gid_)
    log::fatal("cannot restore the deliverer's file-system ids ({}:{})", previous_uid_, previous_gid_);
}

}  // namespace wsmtp::deliver
