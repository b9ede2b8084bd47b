/*
 * A stand-in for Windows' bcryptprimitives.dll, for running kiln.exe under
 * Wine in the tests only (tests/e2e/wine_host.rs builds it with
 * x86_64-w64-mingw32-gcc and puts it beside kiln.exe; it is never shipped).
 *
 * Why: Rust's standard library on Windows takes its random bytes (HashMap
 * keys, among others) from ProcessPrng in bcryptprimitives.dll, present
 * since Windows 10. Wine 8.0 (Debian 12) has no such export, so every Rust
 * program built by Rust 1.78 or later fails to start under it. Real Windows
 * has the real DLL, so the copy beside the program in the test's
 * directory is never needed there: this file matters under Wine only.
 *
 * Windows' ProcessPrng(PBYTE, SIZE_T) fills the buffer and always returns
 * TRUE. Here the bytes come from RtlGenRandom (advapi32's
 * SystemFunction036), which Wine implements over the host's random source;
 * if that ever fails we return FALSE and Rust's std aborts, which is right
 * for a program that asked for random bytes. RtlGenRandom takes a ULONG
 * length, so large requests go in chunks.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
