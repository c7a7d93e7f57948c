#include "runtime/internal/fd_table.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "runtime/io_watcher.h"

namespace evactor::internal {

void FdTable::Recompute(Entry& e) {
  uint32_t wanted = 0;
  for (IoWatcher* w = e.head; w != nullptr; w = w->fd_next_) wanted |= w->events_;
  e.wanted = wanted;
  if (e.head == nullptr) e.edge = false;
}

absl::Status FdTable::Add(IoWatcher* w) {
  const int fd = w->fd_;
  const bool edge = w->options_.edge_triggered;
  if (edge && !backend_->supports_edge()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the ", std::string(BackendName(backend_->kind())), " backend does not support edge-triggered watchers"));
  }
  if ((w->events_ & kClosed) && !backend_->supports_closed()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the ", std::string(BackendName(backend_->kind())), " backend cannot report peer hang-up (kClosed)"));
  }
  Entry& e = Get(fd);
  if (e.head != nullptr && e.edge != edge) {
    return absl::InvalidArgumentError(
        absl::StrCat("fd ", fd, " is already watched ", e.edge ? "edge" : "level",
                     "-triggered; all watchers of an fd must use the same mode"));
  }
  const uint32_t wanted = e.wanted | w->events_;
  if (!w->bound_ || e.kernel == 0) {
    // New binding: apply now so errors reach Start() and stale state is corrected.
    // With kernel == 0 this is an ADD; otherwise the backend's ADD→MOD retry
    // re-verifies a registration that may have died with a closed fd.
    ++backend_calls_;
    absl::Status s = backend_->Apply(fd, 0, wanted, edge);
    if (!s.ok()) return s;
    e.kernel = wanted;
    e.kernel_edge = edge;
    w->bound_ = true;
  } else if (wanted != e.kernel || edge != e.kernel_edge) {
    MarkDirty(fd, e);
  }
  e.wanted = wanted;
  e.edge = edge;
  w->fd_prev_ = nullptr;
  w->fd_next_ = e.head;
  if (e.head != nullptr) e.head->fd_prev_ = w;
  e.head = w;
  w->linked_ = true;
  return absl::OkStatus();
}

void FdTable::Unlink(Entry& e, IoWatcher* w) {
  if (w->fd_prev_ != nullptr) {
    w->fd_prev_->fd_next_ = w->fd_next_;
  } else {
    e.head = w->fd_next_;
  }
  if (w->fd_next_ != nullptr) w->fd_next_->fd_prev_ = w->fd_prev_;
  w->fd_next_ = w->fd_prev_ = nullptr;
  w->linked_ = false;
}

void FdTable::Remove(IoWatcher* w) {
  Entry& e = entries_[w->fd_];
  Unlink(e, w);
  Recompute(e);
  if (e.wanted == 0 && e.kernel != 0) {
    // The last watcher of the fd went away: unregister now, not at the next flush.
    // Owners close an fd right after destroying its watchers; a deferred DEL would
    // then hit a closed number, which another thread may already have reused.
    ++backend_calls_;
    backend_->Apply(w->fd_, e.kernel, 0, e.kernel_edge).IgnoreError();
    e.kernel = 0;
    return;
  }
  if (e.wanted != e.kernel || (e.wanted != 0 && e.edge != e.kernel_edge)) MarkDirty(w->fd_, e);
}

int FdTable::Flush() {
  int calls = 0;
  for (int fd : dirty_) {
    Entry& e = entries_[fd];
    e.dirty = false;
    // Drop one-shot watchers that fired and were not started again.
    bool dropped = false;
    for (IoWatcher* w = e.head; w != nullptr;) {
      IoWatcher* next = w->fd_next_;
      if (!w->started_) {
        Unlink(e, w);
        dropped = true;
      }
      w = next;
    }
    if (dropped) Recompute(e);
    if (e.wanted == e.kernel && (e.wanted == 0 || e.edge == e.kernel_edge)) continue;
    ++calls;
    // An error here means the fd was closed behind our back; the kernel then holds
    // nothing for it, which is what we record.
    absl::Status s = backend_->Apply(fd, e.kernel, e.wanted, e.edge);
    if (s.ok()) {
      e.kernel = e.wanted;
      e.kernel_edge = e.edge;
    } else {
      e.kernel = 0;
    }
  }
  dirty_.clear();
  backend_calls_ += calls;
  return calls;
}

void FdTable::DropStale(int fd) {
  if (fd < static_cast<int>(entries_.size())) {
    Entry& e = entries_[fd];
    if (e.wanted != 0) return;
    if (e.kernel != 0) {
      MarkDirty(fd, e);
      return;
    }
  }
  // Unknown to us but reported by the kernel (a dup'ed fd's registration): drop it.
  ++backend_calls_;
  backend_->Apply(fd, kRead | kWrite | kClosed, 0, false).IgnoreError();
}

absl::Status FdTable::ReapplyAll() {
  absl::Status first;
  for (int fd = 0; fd < static_cast<int>(entries_.size()); ++fd) {
    Entry& e = entries_[fd];
    e.kernel = 0;
    if (e.wanted == 0) continue;
    ++backend_calls_;
    absl::Status s = backend_->Apply(fd, 0, e.wanted, e.edge);
    if (s.ok()) {
      e.kernel = e.wanted;
      e.kernel_edge = e.edge;
    } else if (first.ok()) {
      first = s;
    }
  }
  return first;
}

}  // namespace evactor::internal
