// Maildir delivery (https://cr.yp.to/proto/maildir.html): write into tmp/, fsync,
// rename into new/, fsync new/. A crash never leaves a partial file in new/.
// Names in new/ are derived from the delivery row, so a retried delivery (after
// a crash between the rename and the database commit) finds its file and does
// not write a second copy. The mailbox's owner controls the Maildir: every file
// is opened and changed by descriptor, relative to directories opened without
// following symlinks (a symlinked Maildir, tmp/, new/ or cur/ is refused), and
// the tmp/ name is unpredictable and created exclusively.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "unique_fd.h"

namespace wsmtp::deliver {

// "<received epoch>.W<msg>_<delivery>.<host>" with '/' and ':' in host escaped
// as the Maildir convention asks.
std::string maildir_unique_name(std::int64_t received_epoch, std::int64_t msg_id, std::int64_t delivery_id,
                                std::string_view host);

enum class MaildirOutcome { written, already_present };

using ByteSink = std::function<void(std::string_view)>;

// Who owns what a delivery creates: the directories it has to create (a new
// mailbox) and the message files. uid/gid -1: keep the deliverer's own.
struct MaildirOwner {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  mode_t dir_mode = 0700;
  mode_t file_mode = 0600;
};

// Maildirs this deliverer found or made complete (tmp/, new/, cur/), so that
// each batch does not try mkdir on every directory of their paths again. A
// Maildir removed behind our back is noticed when opening or writing into it
// fails, forgotten, and made again.
class KnownMaildirs {
 public:
  bool contains(const std::string& maildir) const { return known_.count(maildir) != 0; }
  void add(const std::string& maildir);
  void forget(const std::string& maildir) { known_.erase(maildir); }

 private:
  static constexpr std::size_t kMaxEntries = 100000;  // then start over: bounded memory
  std::unordered_set<std::string> known_;
};

// A batch of Maildir deliveries that pays the fsyncs together: each message
// is written to tmp/ as it comes (stage), then sync() fsyncs all the tmp files
// in parallel, renames each into new/ and fsyncs each new/ directory once.
// The order per file is the Maildir one (data durable before the rename, the
// rename durable before the caller commits), only the waiting overlaps.
class MaildirBatch {
 public:
  // known: kept by the caller across batches; nullptr: check every time.
  explicit MaildirBatch(MaildirOwner owner = {}, KnownMaildirs* known = nullptr) : owner_(owner), known_(known) {}
  ~MaildirBatch();
  MaildirBatch(const MaildirBatch&) = delete;
  MaildirBatch& operator=(const MaildirBatch&) = delete;

  // Creates maildir/{tmp,new,cur} if missing and writes the message into tmp/.
  // Returns already_present (nothing staged) or written (staged; final after
  // sync()). Throws like deliver_to_maildir; a failed stage leaves no tmp file.
  // A Maildir (or its tmp/, new/, cur/) that is a symlink throws
  // MaildirRefused.
  MaildirOutcome stage(const std::string& maildir, const std::string& unique_name,
                       const std::function<void(const ByteSink&)>& produce);

  // stage() in two steps, for callers that decide between them (quota):
  // contains() creates maildir/{tmp,new,cur} if missing and says whether the
  // message is in new/ or cur/ already; write() stages it without that check.
  bool contains(const std::string& maildir, const std::string& unique_name);
  // Only the first half of contains(): maildir/{tmp,new,cur} made if missing.
  // For a copy that cannot have been written before (a first delivery claim),
  // which then needs no look into new/ and cur/ (cur/ grows with the mailbox).
  void prepare(const std::string& maildir) { ensure(maildir); }
  void write(const std::string& maildir, const std::string& unique_name,
             const std::function<void(const ByteSink&)>& produce);

  // The size in bytes of the message staged last, and taking it back (its tmp
  // file is removed; it never reaches new/).
  std::uint64_t last_size() const;
  void discard_last();

  // Makes every staged message durable in new/. Returns one entry per staged
  // message, in stage order: empty on success, else the error (that message is
  // not delivered, or not durably: the caller retries it; the retry finds it).
  std::vector<std::string> sync();

  // Messages staged and not yet synced.
  std::size_t size() const;

 private:
  struct Dirs;
  struct Staged {
    common::UniqueFd fd;
    // Co-owned with dirs_: a Maildir made again during the batch gets new
    // Dirs, while copies staged before still need the old tmp/.
    std::shared_ptr<Dirs> dirs;
    std::string tmp_name;
    std::string name;
    std::string error;
    std::uint64_t size = 0;
  };
  Dirs& ensure(const std::string& maildir);
  std::string tmp_name(const std::string& unique_name);

  MaildirOwner owner_;
  KnownMaildirs* known_;
  std::map<std::string, std::shared_ptr<Dirs>> dirs_;  // the Maildirs this batch opened
  std::vector<Staged> staged_;
  std::random_device random_;
};

// A Maildir component that delivery must not go through: the Maildir itself,
// tmp/, new/ or cur/ is a symlink (or not a directory). what() names it.
class MaildirRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Creates maildir/{tmp,new,cur} if missing, then streams the message produced by
// `produce` (which calls the sink it is given) into it. Throws std::system_error
// (or whatever produce throws), MaildirRefused; a failed attempt removes its tmp
// file.
MaildirOutcome deliver_to_maildir(const std::string& maildir, const std::string& unique_name,
                                  const std::function<void(const ByteSink&)>& produce, MaildirOwner owner = {});

}  // namespace wsmtp::deliver
