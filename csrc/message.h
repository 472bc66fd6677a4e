// Error messages of the ops, assembled from strings (integers through std::to_string), never
// through std::ostream inside this module: on the GPU machine (GCC 13 behind a compiler
// wrapper, C++20, torch 2.11) the module's own instantiation of ostream << long crashed while
// formatting a message (docs/stable_abi.md). Torch-free, so that the stable-ABI ops
// (csrc/stable/, compiled where the ATen headers refuse) share it with csrc/checks.h, which adds
// the overloads for c10 types.
#pragma once

#include <cstdint>
#include <string>

namespace sketchwalk::detail {

// message() calls message_piece(piece_tag{}, arg): the tag makes the call look up overloads in
// this namespace when message() is instantiated (argument-dependent lookup), so overloads
// declared after this header (checks.h's, for c10 types) are found too.
struct piece_tag {};

inline std::string message_piece(piece_tag, const char* s) { return s; }
inline std::string message_piece(piece_tag, const std::string& s) { return s; }
inline std::string message_piece(piece_tag, bool v) { return v ? "true" : "false"; }
inline std::string message_piece(piece_tag, int v) { return std::to_string(v); }
inline std::string message_piece(piece_tag, long v) { return std::to_string(v); }
inline std::string message_piece(piece_tag, long long v) { return std::to_string(v); }
inline std::string message_piece(piece_tag, unsigned long v) { return std::to_string(v); }
inline std::string message_piece(piece_tag, double v) { return std::to_string(v); }

// The pieces concatenated, each through its message_piece overload.
template <typename... Args>
std::string message(const Args&... args) {
  std::string out;
  ((out += message_piece(piece_tag{}, args)), ...);
  return out;
}

}  // namespace sketchwalk::detail
