/*
 * The setjmp/longjmp runtime that LLVM's `-mllvm -wasm-enable-sjlj` lowering calls
 * (llvm/lib/Target/WebAssembly/WebAssemblyLowerEmscriptenEHSjLj.cpp, LLVM >= 18 ABI):
 * `__wasm_setjmp` records which invocation of which function called setjmp,
 * `__wasm_setjmp_test` tells a catching function whether a longjmp is for one of its
 * setjmps, and `__wasm_longjmp` throws the `__c_longjmp` exception (tag index 1 of
 * `__builtin_wasm_throw`). wasi-libc ships the same runtime as libsetjmp.a
 * (libc-top-half/musl/src/setjmp/wasm32/rt.c); zig 0.15.2 bundles wasi-libc's headers
 * with the setjmp declarations but not that file, so this is kemibox's own.
 */
#include <stdint.h>

struct jmp_buf_impl {
    void *func_invocation_id;
    uint32_t label;
    /* what the thrown exception carries (a pointer to this pair) */
    struct {
        void *env;
        int val;
    } arg;
};

_Static_assert(sizeof(struct jmp_buf_impl) <= 8 * sizeof(unsigned long),
               "jmp_buf too small");

void __wasm_setjmp(void *env, uint32_t label, void *func_invocation_id) {
    struct jmp_buf_impl *jb = env;
    if (label == 0 || func_invocation_id == 0) {
        __builtin_trap();
    }
    jb->func_invocation_id = func_invocation_id;
    jb->label = label;
}

uint32_t __wasm_setjmp_test(void *env, void *func_invocation_id) {
    struct jmp_buf_impl *jb = env;
    if (jb->label == 0 || func_invocation_id == 0) {
        __builtin_trap();
    }
    return jb->func_invocation_id == func_invocation_id ? jb->label : 0;
}

void __wasm_longjmp(void *env, int val) {
    struct jmp_buf_impl *jb = env;
    jb->arg.env = env;
    jb->arg.val = val == 0 ? 1 : val;
    __builtin_wasm_throw(1, &jb->arg);
}
