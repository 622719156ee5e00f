// modelexport/detail/linkage.hpp — header-only by default, or the heavy entry points compiled once.
//
// Header-only, every function is inline and a program that calls the whole export pipeline
// generates all of its code in the one file that calls it (the tool's main file took 56 s and
// 1.6 GB at -O2). With MODELEXPORT_COMPILED_LIB defined everywhere, the entry points named
// MODELEXPORT_ENTRY are only declared, and each is defined once by the unit in src/ that defines
// its MODELEXPORT_UNIT_<NAME>: the code is generated in several files built in parallel, and an
// edit to the caller recompiles only the caller. The two modes must not be mixed in one program.
#pragma once

#if defined(MODELEXPORT_COMPILED_LIB)
#define MODELEXPORT_ENTRY
#define MODELEXPORT_COMPILED_LIB_ON 1
#else
#define MODELEXPORT_ENTRY inline
#define MODELEXPORT_COMPILED_LIB_ON 0
#endif

/// True where the definitions of `unit`'s entry points belong: everywhere header-only, and only
/// in src/<unit>.cpp when compiled (an undefined MODELEXPORT_UNIT_<NAME> reads as 0).
#define MODELEXPORT_DEFINES(unit) (!MODELEXPORT_COMPILED_LIB_ON || MODELEXPORT_UNIT_##unit)
