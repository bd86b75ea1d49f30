/*
 * x86_64 (System V) context switch for weft tasks.
 *
 * weft__ctx_switch(from, to) stores the callee-saved registers, the stack
 * pointer the caller will have after returning, and the return address into
 * *from, then loads *to and resumes it by jumping to its saved address (no
 * return-stack games, no push/pop on the target stack).  MXCSR and the x87
 * control word are callee-saved by the ABI; they are reloaded only when the
 * target's differ, because ldmxcsr/fldcw are slow and almost always redundant.
 */
#if defined(__x86_64__)
	.text
	.globl	weft__ctx_switch
	.hidden	weft__ctx_switch
	.type	weft__ctx_switch, @function
	.p2align 4
weft__ctx_switch:
	.cfi_startproc
	movq	(%rsp), %rax
	leaq	8(%rsp), %rcx
	movq	%rax, 0(%rdi)
	movq	%rcx, 8(%rdi)
	movq	%rbx, 16(%rdi)
	movq	%rbp, 24(%rdi)
	movq	%r12, 32(%rdi)
	movq	%r13, 40(%rdi)
	movq	%r14, 48(%rdi)
	movq	%r15, 56(%rdi)
	stmxcsr	64(%rdi)
	fnstcw	68(%rdi)

	movl	64(%rsi), %eax
	cmpl	64(%rdi), %eax
	jne	.Lload_mxcsr
.Lmxcsr_done:
	movzwl	68(%rsi), %eax
	cmpw	68(%rdi), %ax
	jne	.Lload_fpucw
.Lfpucw_done:
	movq	16(%rsi), %rbx
	movq	24(%rsi), %rbp
	movq	32(%rsi), %r12
	movq	40(%rsi), %r13
	movq	48(%rsi), %r14
	movq	56(%rsi), %r15
	movq	8(%rsi), %rsp
	jmpq	*0(%rsi)
.Lload_mxcsr:
	ldmxcsr	64(%rsi)
	jmp	.Lmxcsr_done
.Lload_fpucw:
	fldcw	68(%rsi)
	jmp	.Lfpucw_done
	.cfi_endproc
	.size	weft__ctx_switch, .-weft__ctx_switch

/*
 * First frame of every task: r12 = argument, r13 = entry.  The return
 * address column is undefined so unwinders (gdb, perf, libunwind) stop here
 * cleanly instead of walking into garbage above the stack top.
 */
	.globl	weft__ctx_trampoline
	.hidden	weft__ctx_trampoline
	.type	weft__ctx_trampoline, @function
	.p2align 4
weft__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	xorl	%ebp, %ebp
	movq	%r12, %rdi
	callq	*%r13
	ud2
	.cfi_endproc
	.size	weft__ctx_trampoline, .-weft__ctx_trampoline
#endif
	.section .note.GNU-stack,"",@progbits
