// relay-control's crypto thread: computes unknown senders' key agreements (X25519, the
// one slow step of an unauthenticated message) off the event loop, so that registered
// peers' messages never wait behind one.  The loop hands requests over (submit) as
// ControlCore::take_key_agreements gives them, and polls ready_fd(): readable when
// results wait; take_results() hands them back for ControlCore::complete_key_agreement.
//
// Holds no more than the core lets out: the core bounds its key agreements in flight
// (ControlCore::defer_key_agreements), so this thread's queues are bounded by that too.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "control_core.hpp"
#include "relay/ipc/unix_socket.hpp"

namespace relay::control {

class KeyAgreementWorker {
  public:
    // Starts the thread.  Throws std::runtime_error if the eventfd cannot be made.
    explicit KeyAgreementWorker(const SecretKey& ours);
    // Stops the thread (requests not yet computed are dropped) and joins it.
    ~KeyAgreementWorker();
    KeyAgreementWorker(const KeyAgreementWorker&) = delete;
    KeyAgreementWorker& operator=(const KeyAgreementWorker&) = delete;

    // Queues `requests` (moved out; the vector is left empty) and wakes the thread.
    void submit(std::vector<KeyAgreementRequest>& requests);
    // Readable while results wait to be taken (an eventfd).
    int ready_fd() const { return ready_.get(); }
    // Moves every finished result to the back of `results`, oldest first.
    void take_results(std::vector<KeyAgreementResult>& results);

  private:
    void run();

    SecretKey ours_;
    ipc::FileDescriptor ready_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<KeyAgreementRequest> requests_;  // guarded by mutex_
    std::vector<KeyAgreementResult> results_;   // guarded by mutex_
    bool stop_ = false;                         // guarded by mutex_
    std::thread thread_;                        // last: starts once the rest is built
};

}  // namespace relay::control
