#pragma once
// Writing a mailbox as the user it belongs to (STYLE.md §8: the deliverer takes
// the recipient's uid only around the mailbox write), the way Postfix's local
// and Dovecot's LDA create and append to /var/mail spools as their owner.
//
// Linux's file-system ids (setfsuid/setfsgid) are per thread and decide only
// file access and the owner of new files: the worker's other threads (lease
// renewal) and its signals, database connection and memory stay the
// deliverer's. Needs CAP_SETUID and CAP_SETGID (wdeliver.service grants just
// those two); without them assume() says so and nothing changes.
#include <sys/types.h>

#include <optional>

namespace wsmtp::deliver {

class FsIdentity {
 public:
  // Switches this thread's file-system uid and gid; nullopt (and no change)
  // when the process may not. Never switches to root: a spool owned by root
  // is written as the deliverer, as Postfix writes root's mail as default_privs.
  static std::optional<FsIdentity> assume(uid_t uid, gid_t gid);
  FsIdentity(FsIdentity&& other) noexcept;
  FsIdentity& operator=(FsIdentity&&) = delete;
  FsIdentity(const FsIdentity&) = delete;
  ~FsIdentity();

 private:
  FsIdentity(uid_t previous_uid, gid_t previous_gid) : previous_uid_(previous_uid), previous_gid_(previous_gid) {}
  uid_t previous_uid_;
  gid_t previous_gid_;
  bool active_ = true;
};

}  // namespace wsmtp::deliver
