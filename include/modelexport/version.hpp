// modelexport/version.hpp — the toolkit's version (kept in step with meson.build's project version).
#pragma once

namespace modelexport {
inline constexpr const char* version = "0.1.0";
}  // namespace modelexport
