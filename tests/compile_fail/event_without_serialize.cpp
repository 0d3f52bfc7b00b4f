// Must NOT compile: an event with fields but no serialize. The build test checks that the first
// error is jetsource's readable message, not cereal's, deep in its archives.
#include <jetsource/event.hpp>

#include <string>
#include <string_view>
#include <variant>
#include <vector>

struct order_noted {
  static constexpr std::string_view type_name = "OrderNoted";
  std::string note;  // a field, and no serialize
};

int main() {
  using registry = jetsource::event_registry<std::variant<order_noted>>;
  std::vector<registry::variant> events{order_noted{"x"}};
  return registry::encode(events) ? 0 : 1;
}
