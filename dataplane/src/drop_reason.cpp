#include "drop_reason.hpp"

namespace relay::dp {

std::string drop_reason_doc_row(DropReason r) {
    const DropReasonInfo& info = kDropReasons[static_cast<unsigned>(r)];
    return std::string("| `") + info.name + "` | " + info.meaning + " | " + info.check + " |";
}

}  // namespace relay::dp
