// personal fields: which key provider the calling thread uses (key_scope, else installed).
#include "personal/key_store_state.hpp"

#include <atomic>
#include <mutex>
#include <utility>
#include <vector>

namespace jetsource {

namespace detail {
namespace {
thread_local key_provider* thread_provider = nullptr;
std::atomic<key_provider*> installed_provider{nullptr};
std::mutex installed_mutex;
std::shared_ptr<key_store_state> installed_state;  // keeps the installed provider alive
}  // namespace

key_provider* current_key_provider() noexcept {
  if (thread_provider != nullptr) return thread_provider;
  return installed_provider.load(std::memory_order_acquire);
}

key_provider* exchange_thread_key_provider(key_provider* p) noexcept {
  return std::exchange(thread_provider, p);
}
}  // namespace detail

// A replaced store stays alive: a thread decoding with the old pointer while another installs
// keeps working (the previous state is kept, on purpose, until exit; replacing is rare).
void key_store::install() const {
  std::lock_guard lock(detail::installed_mutex);
  static auto* retired = new std::vector<std::shared_ptr<detail::key_store_state>>;
  if (detail::installed_state) retired->push_back(detail::installed_state);
  detail::installed_state = state_;
  detail::installed_provider.store(state_.get(), std::memory_order_release);
}

void key_store::uninstall() {
  std::lock_guard lock(detail::installed_mutex);
  detail::installed_provider.store(nullptr, std::memory_order_release);
  detail::installed_state.reset();
}

key_scope::key_scope(const key_store& keys)
    : keep_(keys.state_), previous_(detail::exchange_thread_key_provider(keep_.get())) {}

key_scope::~key_scope() {
  detail::exchange_thread_key_provider(previous_);
}

}  // namespace jetsource
