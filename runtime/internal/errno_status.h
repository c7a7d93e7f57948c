// absl::Status from errno values, with the failing call named in the message.
#ifndef EVACTOR_RUNTIME_INTERNAL_ERRNO_STATUS_H_
#define EVACTOR_RUNTIME_INTERNAL_ERRNO_STATUS_H_

#include <string_view>

#include "absl/status/status.h"

namespace evactor::internal {

// "what: strerror(err)", with the absl code that best matches `err`
// (absl::ErrnoToStatus, which Debian's Abseil 20220623 has).
absl::Status ErrnoToStatus(int err, std::string_view what);

}  // namespace evactor::internal

#endif  // EVACTOR_RUNTIME_INTERNAL_ERRNO_STATUS_H_
