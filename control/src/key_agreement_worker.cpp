#include "key_agreement_worker.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace relay::control {

KeyAgreementWorker::KeyAgreementWorker(const SecretKey& ours)
    : ours_(ours), ready_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    if (!ready_)
        throw std::runtime_error(std::string("key agreement thread: eventfd: ") +
                                 std::strerror(errno));
    thread_ = std::thread([this] { run(); });
}

KeyAgreementWorker::~KeyAgreementWorker() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void KeyAgreementWorker::submit(std::vector<KeyAgreementRequest>& requests) {
    if (requests.empty()) return;
    {
        std::lock_guard lock(mutex_);
        for (KeyAgreementRequest& r : requests) requests_.push_back(std::move(r));
    }
    requests.clear();
    wake_.notify_one();
}

void KeyAgreementWorker::take_results(std::vector<KeyAgreementResult>& results) {
    uint64_t count = 0;
    // Cleared before the results are taken: a result finished after this read makes the
    // eventfd readable again, so none waits unnoticed.
    [[maybe_unused]] const ssize_t n = ::read(ready_.get(), &count, sizeof count);
    std::lock_guard lock(mutex_);
    for (KeyAgreementResult& r : results_) results.push_back(std::move(r));
    results_.clear();
}

void KeyAgreementWorker::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return stop_ || !requests_.empty(); });
        if (stop_) return;
        KeyAgreementRequest request = std::move(requests_.front());
        requests_.pop_front();
        lock.unlock();
        KeyAgreementResult result = agree(std::move(request), ours_);
        lock.lock();
        results_.push_back(std::move(result));
        const uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(ready_.get(), &one, sizeof one);
    }
}

}  // namespace relay::control
