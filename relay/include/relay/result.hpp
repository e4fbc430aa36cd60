// A value or an error, for the edges (config, IPC, CLI) where C++23's
// std::expected would be used; g++ 12 in C++20 mode does not have it.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace relay {

template <typename E>
struct Unexpected {
    // A constructor, not an aggregate, so that Unexpected(e) also compiles with clang
    // before 16 (no parenthesised aggregate initialisation), which the fuzz build uses.
    Unexpected(E e) : error(std::move(e)) {}
    E error;
};
template <typename E>
Unexpected(E) -> Unexpected<E>;

template <typename T, typename E>
class Result {
  public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Result(Unexpected<E> e) : v_(std::in_place_index<1>, std::move(e.error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const E& error() const { return std::get<1>(v_); }

  private:
    std::variant<T, E> v_;
};

}  // namespace relay
