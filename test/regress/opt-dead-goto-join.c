// Built with `clang -O2 -target bpf -c opt-dead-goto-join.c -o opt-dead-goto-join.o` (clang 14).
// Code only dead code reaches (k2 issue 13, found by the fuzzer on ebpf-samples/build/byteswap.o):
// each `goto` after an `exit` starts a block nothing jumps to, i.e. one more entry of the control-flow
// graph, and the block they all jump to has no dominator; k2 opt's dominator walk never ended.
__attribute__((noinline, used)) int dead_goto_join(void *ctx)
{
	int r;
	asm volatile(
		"call 7\n"
		"r1 = r0\n"
		"r1 &= 1\n"
		"if r1 == 0 goto 1f\n"
		"r0 = 1\n"
		"exit\n"
		"goto 2f\n"
		"1:\n"
		"r0 = 2\n"
		"exit\n"
		"goto 2f\n"
		"2:\n"
		"r0 = 0\n"
		"exit\n"
		: "=r"(r) :: "r0", "r1", "r2", "r3", "r4", "r5");
	return r;
}
char _license[] __attribute__((section("license"), used)) = "GPL";
