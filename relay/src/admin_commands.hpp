// `relay status`, `relay peers`, `relay sessions`, `relay drain`: ask relay-control's admin
// socket (docs/PROTOCOL.md, "Admin socket") and print the answer for an operator.
#pragma once

#include <span>
#include <string>

namespace relay::cli {

using Args = std::span<const std::string>;

int status_command(Args args);
int peers_command(Args args);
int sessions_command(Args args);
int drain_command(Args args);

}  // namespace relay::cli
