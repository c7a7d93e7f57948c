#include "runtime/internal/errno_status.h"

#include "absl/strings/string_view.h"

namespace evactor::internal {

absl::Status ErrnoToStatus(int err, std::string_view what) {
  return absl::ErrnoToStatus(err, absl::string_view(what.data(), what.size()));
}

}  // namespace evactor::internal
