// The usual helper for std::visit with one lambda per alternative:
//   std::visit(Overload{[](const A&) {...}, [](const B&) {...}}, v);
#pragma once

namespace moeflux {

template <class... Fs>
struct Overload : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overload(Fs...) -> Overload<Fs...>;

}  // namespace moeflux
