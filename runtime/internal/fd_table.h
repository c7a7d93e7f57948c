// Per-fd bookkeeping of a Loop: which IoWatchers watch each fd, what interest they
// want together, and what the kernel was last told.
//
// Thread safety: none; owned by one Loop.
//
// Changes are collected, not applied: a watcher stopped and started again before the
// loop next waits (a one-shot watcher re-armed by its callback, a socket toggling
// write interest while it still reads) costs no system call. The one exception is
// the last watcher of an fd going away: that is applied at once, because owners close
// the fd right after, and a deferred unregistration would reach a closed (perhaps
// already reused) fd number. Flush() applies what differs just before the
// loop waits. A new binding (a watcher's first Start, or after set_fd) is applied at
// once, so that its errors reach Start() and a stale registration of a closed,
// reused fd number is corrected.
//
// Invariants:
//  1. entry.wanted is the OR of the interest of the watchers in entry's list (armed
//     or, until the next Flush, disarmed one-shots), and
//     entry.edge their common triggering mode (all watchers of an fd agree).
//  2. entry.kernel/kernel_edge are what the backend was last told for the fd.
//  3. entry.dirty is set exactly when the fd is on the dirty list.
#ifndef EVACTOR_RUNTIME_INTERNAL_FD_TABLE_H_
#define EVACTOR_RUNTIME_INTERNAL_FD_TABLE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "runtime/internal/backend.h"
#include "runtime/io_watcher.h"

namespace evactor {
class IoWatcher;
namespace internal {

class FdTable {
 public:
  explicit FdTable(Backend* backend) : backend_(backend) {}

  absl::Status Add(IoWatcher* w);
  void Remove(IoWatcher* w);
  // A fired one-shot watcher: it stays linked (its interest still counted) until
  // Flush(), which unlinks it unless it was started again meanwhile.
  void Disarm(IoWatcher* w) { MarkDirty(w->fd(), entries_[w->fd()]); }
  // Applies collected changes. Returns the number of backend calls made.
  int Flush();
  // The watchers of `fd`, or nullptr.
  IoWatcher* Watchers(int fd) const {
    return fd >= 0 && fd < static_cast<int>(entries_.size()) ? entries_[fd].head : nullptr;
  }
  // Called when the backend reported `fd` but no watcher wants it any more (the
  // registration outlived its watchers): unregister it.
  void DropStale(int fd);
  // After a backend Reinit(): registers every fd with watchers again.
  absl::Status ReapplyAll();

  int64_t backend_calls() const { return backend_calls_; }

 private:
  struct Entry {
    IoWatcher* head = nullptr;
    uint32_t wanted = 0;
    uint32_t kernel = 0;
    bool edge = false;
    bool kernel_edge = false;
    bool dirty = false;
  };
  Entry& Get(int fd) {
    if (fd >= static_cast<int>(entries_.size())) entries_.resize(fd + 1);
    return entries_[fd];
  }
  void Recompute(Entry& e);
  void Unlink(Entry& e, IoWatcher* w);
  void MarkDirty(int fd, Entry& e) {
    if (!e.dirty) {
      e.dirty = true;
      dirty_.push_back(fd);
    }
  }

  Backend* backend_;
  std::vector<Entry> entries_;
  std::vector<int> dirty_;
  int64_t backend_calls_ = 0;
};

}  // namespace internal
}  // namespace evactor

#endif  // EVACTOR_RUNTIME_INTERNAL_FD_TABLE_H_
