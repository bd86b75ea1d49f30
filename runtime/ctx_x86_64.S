/*
 * x86_64 (System V) context switch for weft tasks.
 *
 * weft__ctx_switch(from, to) stores the callee-saved registers and the stack
 * pointer into *from, with .Lresume as its saved address, then loads *to and
 * resumes it by jumping to its saved address: .Lresume for a context that
 * switched away, the trampoline for a new one.  .Lresume returns to the
 * caller of the switch on the resumed stack, so every `call` of the switch is
 * paired with a `ret`: the CPU's return-stack predictor stays balanced and
 * the returns after a switch are predicted (jumping straight back to the
 * caller instead costs a mispredicted return per frame, ~3x the switch).
 * MXCSR and the x87 control word are callee-saved by the ABI; they are
 * reloaded only when the target's differ (ldmxcsr/fldcw are slow and almost
 * always redundant).
 */
#if defined(__x86_64__)
	.text
	.globl	weft__ctx_switch
	.hidden	weft__ctx_switch
	.type	weft__ctx_switch, @function
	.p2align 4
weft__ctx_switch:
	.cfi_startproc
	leaq	.Lresume(%rip), %rax
	movq	%rax, 0(%rdi)
	movq	%rsp, 8(%rdi)
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
.Lresume:
	/* On the resumed stack, whose top is the return address pushed when
	 * it called the switch: the frame looks as it did at entry. */
	ret
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
