# memkern — build, run and test.
#
#   make            build the kernel ELF (release)
#   make run        boot it in QEMU through PVH, serial on this terminal
#   make test       host tests, then serial expect tests against the real kernel
#   make iso        hybrid BIOS+UEFI Limine ISO (memkern.iso)
#   make run-iso    boot the ISO with SeaBIOS;  make run-uefi: with OVMF
#   make debug      QEMU waiting for gdb on :1234
#   make bench      host benchmarks (cargo bench)
#   make bench-callgrind  instructions per object of the batch workloads, every peer
#   make clean
#
# Variables: MEM (RAM size, default 2G), CMDLINE (kernel command line),
# LIMINE_DIR (a Limine 8.x binary release; else the official v8.x-binary branch is
# cloned into build/limine where the network allows).

MEM      ?= 2G
CMDLINE  ?=
TARGET   := x86_64-unknown-none
KERNEL   := target/$(TARGET)/release/kernel
ISO      := memkern.iso
BUILD    := build
LIMINE_BRANCH := v8.x-binary
LIMINE_URL    := https://github.com/limine-bootloader/limine.git
OVMF_CODE ?= $(firstword $(wildcard /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_CODE.fd /usr/share/ovmf/OVMF.fd))
OVMF_VARS ?= $(firstword $(wildcard /usr/share/OVMF/OVMF_VARS_4M.fd /usr/share/OVMF/OVMF_VARS.fd))
QEMU     := qemu-system-x86_64
QEMU_COMMON := -m $(MEM) -no-reboot -accel tcg -device isa-debug-exit,iobase=0xf4,iosize=0x04
# Serial on this terminal; Ctrl-C goes to memkern's shell (signal=off), Ctrl-A X quits.
# DISPLAY_UI=gtk (or sdl) shows the screen in a window: make run-q35 DISPLAY_UI=gtk.
DISPLAY_UI ?= none
QEMU_TTY := -display $(DISPLAY_UI) -chardev stdio,id=con,mux=on,signal=off -serial chardev:con -mon chardev=con,mode=readline
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS := qemu-system-x86 xorriso ovmf gdb

.PHONY: all kernel run run-q35 iso run-iso run-uefi debug test test-host test-serial bench bench-callgrind \
        deps deps-rust deps-apt limine clean fmt clippy

all: kernel

# ---- set-up: installs only what is missing -------------------------------------
deps: deps-rust deps-apt

deps-rust:
	@command -v cargo >/dev/null || { echo "error: cargo not found; install Rust with rustup (https://rustup.rs)"; exit 1; }
	@if command -v rustup >/dev/null; then \
	  rustup target list --installed 2>/dev/null | grep -qx $(TARGET) || rustup target add $(TARGET); \
	  for c in rustfmt clippy; do rustup component list --installed 2>/dev/null | grep -q "^$$c" || rustup component add $$c; done; \
	fi

deps-apt:
	@missing=""; \
	command -v $(QEMU) >/dev/null || missing="$$missing qemu-system-x86"; \
	command -v xorriso >/dev/null || missing="$$missing xorriso"; \
	[ -n "$(OVMF_CODE)" ] || missing="$$missing ovmf"; \
	command -v gdb >/dev/null || missing="$$missing gdb"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "error: missing packages:$$missing. Run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# ---- build ----------------------------------------------------------------------
kernel: deps-rust
	cargo build -p kernel --target $(TARGET) --release

# ---- run --------------------------------------------------------------------------
run: kernel deps-apt
	@echo "memkern under QEMU (PVH, $(MEM)); 'poweroff' to leave, or Ctrl-A X"
	$(QEMU) -M microvm $(QEMU_COMMON) $(QEMU_TTY) -kernel $(KERNEL) -append "$(CMDLINE)"; \
	  st=$$?; [ $$st = 0 ] || [ $$st = 33 ] || { echo "QEMU exit status $$st"; exit $$st; }

run-q35: kernel deps-apt
	$(QEMU) -M q35 $(QEMU_COMMON) $(QEMU_TTY) -kernel $(KERNEL) -append "$(CMDLINE)"; \
	  st=$$?; [ $$st = 0 ] || [ $$st = 33 ] || exit $$st

# The kernel's symbols are Rust paths: the entry is `kernel::kmain`, not `kmain`.
# A plain `break` stops there although QEMU starts with paging off: under TCG the
# gdb stub matches breakpoints against the virtual RIP itself instead of writing
# int3 into memory. (With -accel kvm it writes, and gdb answers "Cannot insert
# breakpoint" before paging is on: there use `hbreak kernel::kmain`.)
# The serial test `gdb_stops_at_kmain` runs these exact commands.
debug: kernel deps-apt
	@echo "QEMU is waiting for gdb. In another terminal:"
	@echo "  gdb $(KERNEL) -ex 'target remote :1234' -ex 'break kernel::kmain' -ex continue"
	$(QEMU) -M microvm $(QEMU_COMMON) $(QEMU_TTY) -kernel $(KERNEL) -append "$(CMDLINE)" -s -S

# ---- ISO ----------------------------------------------------------------------------
# Limine binaries: LIMINE_DIR, else a shallow clone of the official binary branch.
limine:
	@if [ -n "$(LIMINE_DIR)" ]; then \
	  [ -f "$(LIMINE_DIR)/limine-bios-cd.bin" ] || { echo "error: LIMINE_DIR=$(LIMINE_DIR) has no limine-bios-cd.bin (want a Limine 8.x binary release)"; exit 1; }; \
	elif [ ! -f $(BUILD)/limine/limine-bios-cd.bin ]; then \
	  mkdir -p $(BUILD); \
	  git clone -q --depth=1 --branch=$(LIMINE_BRANCH) $(LIMINE_URL) $(BUILD)/limine 2>/dev/null || { \
	    echo "error: no Limine binaries: set LIMINE_DIR to a Limine 8.x binary release (branch $(LIMINE_BRANCH)); cloning $(LIMINE_URL) failed"; \
	    rm -rf $(BUILD)/limine; exit 1; }; \
	fi

LIMINE_BIN = $(if $(LIMINE_DIR),$(LIMINE_DIR),$(BUILD)/limine)

iso: kernel limine deps-apt
	rm -rf iso-root/boot iso-root/EFI
	mkdir -p iso-root/boot/limine iso-root/EFI/BOOT
	cp $(KERNEL) iso-root/boot/kernel
	cp limine.conf iso-root/boot/limine/limine.conf
	cp $(LIMINE_BIN)/limine-bios.sys $(LIMINE_BIN)/limine-bios-cd.bin $(LIMINE_BIN)/limine-uefi-cd.bin iso-root/boot/limine/
	cp $(LIMINE_BIN)/BOOTX64.EFI $(LIMINE_BIN)/BOOTIA32.EFI iso-root/EFI/BOOT/
	@if [ -n "$(CMDLINE)" ]; then printf '    cmdline: %s\n' "$(CMDLINE)" >> iso-root/boot/limine/limine.conf; fi
	xorriso -as mkisofs -quiet -R -r -J -b boot/limine/limine-bios-cd.bin \
	  -no-emul-boot -boot-load-size 4 -boot-info-table -hfsplus -apm-block-size 2048 \
	  --efi-boot boot/limine/limine-uefi-cd.bin -efi-boot-part --efi-boot-image \
	  --protective-msdos-label iso-root -o $(ISO)
	@if command -v limine >/dev/null; then limine bios-install $(ISO); \
	  else echo "note: no 'limine' executable on PATH: $(ISO) boots BIOS from CD/DVD and UEFI from anything, but needs 'limine bios-install $(ISO)' to BIOS-boot from a USB stick"; fi
	@echo "built $(ISO)"

run-iso: iso
	$(QEMU) -M q35 $(QEMU_COMMON) -chardev stdio,id=con,mux=on,signal=off -serial chardev:con -mon chardev=con,mode=readline -cdrom $(ISO) -boot d; \
	  st=$$?; [ $$st = 0 ] || [ $$st = 33 ] || exit $$st

run-uefi: iso
	@[ -n "$(OVMF_CODE)" ] || { echo "error: OVMF not found (apt-get install ovmf)"; exit 1; }
	cp $(OVMF_VARS) $(BUILD)/ovmf-vars.fd
	$(QEMU) -M q35 $(QEMU_COMMON) -chardev stdio,id=con,mux=on,signal=off -serial chardev:con -mon chardev=con,mode=readline \
	  -drive if=pflash,format=raw,readonly=on,file=$(OVMF_CODE) \
	  -drive if=pflash,format=raw,file=$(BUILD)/ovmf-vars.fd -cdrom $(ISO); \
	  st=$$?; [ $$st = 0 ] || [ $$st = 33 ] || exit $$st

# ---- tests ----------------------------------------------------------------------------
# Host tests (shell, mm, property tests), then the serial tests, which boot the
# release kernel in QEMU. With LIMINE_DIR set, the ISO is built and booted too.
test: deps kernel
	cargo test --workspace --exclude kernel --exclude systest
	@if [ -n "$(LIMINE_DIR)" ]; then $(MAKE) --no-print-directory iso; fi
	MEMKERN_KERNEL=$(CURDIR)/$(KERNEL) MEMKERN_ISO=$(if $(LIMINE_DIR),$(CURDIR)/$(ISO),) \
	  OVMF_CODE=$(OVMF_CODE) OVMF_VARS=$(OVMF_VARS) cargo test -p systest --test serial

bench: deps-rust
	cargo bench -p mm

# The batch tables of issue 13 under callgrind (see mm/benches/callgrind_batches.py;
# QUICK=1 for the small batches only).
bench-callgrind: deps-rust
	@command -v valgrind >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; \
	  else echo "error: valgrind not found. Run: sudo apt-get install -y valgrind"; exit 1; fi; }
	python3 mm/benches/callgrind_batches.py $(if $(QUICK),--quick,)

fmt:
	cargo fmt --all

clippy:
	cargo clippy --workspace --exclude kernel --all-targets -- -D warnings
	cargo clippy -p kernel --target $(TARGET) -- -D warnings

clean:
	cargo clean
	rm -rf $(BUILD) iso-root/boot iso-root/EFI $(ISO)
