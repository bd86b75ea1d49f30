/*
 * AArch64 (AAPCS64) context switch for weft tasks: saves x19-x28, fp, lr,
 * sp, d8-d15 and FPCR into *from with .Lresume as its pc, loads *to and
 * branches to its saved pc; .Lresume returns through the restored lr, so
 * every bl of the switch is paired with a ret (see ctx_x86_64.S for why).
 * Layout matches struct weft__ctx in ctx.h.
 */
#if defined(__aarch64__)
	.text
	.globl	weft__ctx_switch
	.hidden	weft__ctx_switch
	.type	weft__ctx_switch, %function
	.p2align 4
weft__ctx_switch:
	.cfi_startproc
	adr	x10, .Lresume
	mov	x9, sp
	stp	x10, x9, [x0, #0]
	stp	x19, x20, [x0, #16]
	stp	x21, x22, [x0, #32]
	stp	x23, x24, [x0, #48]
	stp	x25, x26, [x0, #64]
	stp	x27, x28, [x0, #80]
	stp	x29, x30, [x0, #96]
	stp	d8, d9, [x0, #112]
	stp	d10, d11, [x0, #128]
	stp	d12, d13, [x0, #144]
	stp	d14, d15, [x0, #160]
	mrs	x9, fpcr
	str	x9, [x0, #176]

	ldp	x19, x20, [x1, #16]
	ldp	x21, x22, [x1, #32]
	ldp	x23, x24, [x1, #48]
	ldp	x25, x26, [x1, #64]
	ldp	x27, x28, [x1, #80]
	ldp	x29, x30, [x1, #96]
	ldp	d8, d9, [x1, #112]
	ldp	d10, d11, [x1, #128]
	ldp	d12, d13, [x1, #144]
	ldp	d14, d15, [x1, #160]
	ldr	x9, [x1, #176]
	msr	fpcr, x9
	ldp	x9, x10, [x1, #0]
	mov	sp, x10
	br	x9
.Lresume:
	ret
	.cfi_endproc
	.size	weft__ctx_switch, .-weft__ctx_switch

	.globl	weft__ctx_trampoline
	.hidden	weft__ctx_trampoline
	.type	weft__ctx_trampoline, %function
	.p2align 4
weft__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined x30
	mov	x29, #0
	mov	x0, x19
	blr	x20
	brk	#0
	.cfi_endproc
	.size	weft__ctx_trampoline, .-weft__ctx_trampoline
#endif
	.section .note.GNU-stack,"",%progbits
