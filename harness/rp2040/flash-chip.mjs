// The Pico's QSPI flash chip (a W25Q16-like SPI NOR), for the commands the boot ROM's flash routines send.
//
// rp2040js keeps flash as a plain array read through XIP; its SSI answers only the status read, so a program
// or erase from the firmware is lost. This module puts a chip behind the SSI for the transfers in which the
// firmware drives chip select itself (the ROM's and the SDK's flash routines force CS low through IO_QSPI's SS
// override); XIP reads stay rp2040js's own.
//
// Modelled: write enable, page program (bits only cleared, address wrapping inside the 256-byte page), 4 KB /
// 32 KB / 64 KB / chip erase, reads, status, JEDEC and unique id. As on the chip, a program or an erase starts
// when chip select goes high after its command and can take time (`programNanos`, `eraseNanos`; 0, instant, by
// default; PROGRAM_NANOS and ERASE_NANOS are the W25Q16JV's typical 0.4 ms and 45 ms) during which the status
// register says busy and the firmware polls it, with its interrupts off.
// Its effect lands at the end, unless the power goes first: `powerLoss(random)` leaves the operation under way
// partly done, each bit it was changing changed with the probability of the time elapsed (a program clears a
// random part of its bits, an erase sets a random part of the sector's bits), as a real cell array is left.
// A command cut before chip select goes high does nothing. Not modelled: status-register writes, quad modes
// in direct SPI, suspend/resume, what a read returns while busy.

const SSI_BASE = 0x18000; // rp2040js's peripheral keys: address >>> 14 << 2
const IO_QSPI_BASE = 0x40018;
const SSI_SSIENR = 0x08;
const SSI_TXFLR = 0x20;
const SSI_RXFLR = 0x24;
const SSI_SR = 0x28;
const SSI_DR0 = 0x60;
const SR_TFNF = 1 << 1;
const SR_TFE = 1 << 2;
const SR_RFNE = 1 << 3;
const IO_QSPI_SS_CTRL = 0x0c;
const OUTOVER_SHIFT = 8;
const OUTOVER_LOW = 2;
const PAGE = 256;
const RX_FIFO_DEPTH = 16;
const JEDEC_ID = [0xef, 0x40, 0x15]; // Winbond W25Q16JV, the Pico's chip
const UNIQUE_ID = [0x54, 0x43, 0x2d, 0x4d, 0x4f, 0x44, 0x45, 0x4c]; // "TC-MODEL"
const STATUS_BUSY = 0x01;
const STATUS_WRITE_ENABLED = 0x02;
export const PROGRAM_NANOS = 400e3; // W25Q16JV tPP, typical
export const ERASE_NANOS = 45e6; // W25Q16JV tSE (4 KB), typical; 32 KB, 64 KB and chip erases take the same here

export class FlashChip {
  /** Counts since the model started: `erases` (4 KB sectors erased), `programs` (page programs), `programmed`
   * (bytes). `onStart(kind, address, length)` runs when a program or erase starts (chip select high after its
   * command), `onOperation(kind, address, length)` when it has ended. `clock` is the simulator's. */
  constructor(mcu, clock, size, { programNanos = 0, eraseNanos = 0 } = {}) {
    this.flash = mcu.flash;
    this.clock = clock;
    this.size = size;
    this.programNanos = programNanos;
    this.eraseNanos = eraseNanos;
    this.erases = 0;
    this.programs = 0;
    this.programmed = 0;
    this.onStart = null;
    this.onOperation = null;
    this.busy = null; // the operation under way: kind, address, length, apply(probability, random), start and end ns
    this.busyAlarm = clock.createAlarm(() => this.complete());
    this.page = new Uint8Array(PAGE); // a page program's data, as the chip's page buffer holds it
    this.pageMask = new Uint8Array(PAGE); // which of its bytes were sent
    this.writeEnabled = false;
    this.selected = false;
    this.rx = [];
    this.command = null;
    this.position = 0;
    this.address = 0;
    this.attachIoQspi(mcu);
    this.attachSsi(mcu.peripherals[SSI_BASE]);
  }

  // IO_QSPI is unimplemented in rp2040js (reads give all ones): keep its registers, watch the SS override
  attachIoQspi(mcu) {
    const chip = this;
    const registers = new Map();
    const base = mcu.peripherals[IO_QSPI_BASE];
    base.readUint32 = (offset) => registers.get(offset) ?? 0;
    base.writeUint32 = (offset, value) => {
      registers.set(offset, value);
      if (offset === IO_QSPI_SS_CTRL) chip.select(((value >>> OUTOVER_SHIFT) & 3) === OUTOVER_LOW);
    };
  }

  // Direct-mode SPI through the SSI: each byte written to DR0 is on the wire at once and its answer waits in
  // the receive FIFO (16 deep, as on the chip). The chip answers only while CS is forced low; with CS high, or
  // under the SSI's own control (the boot loader's few status commands), the answer is 0.
  attachSsi(ssi) {
    const chip = this;
    const read = ssi.readUint32.bind(ssi);
    const write = ssi.writeUint32.bind(ssi);
    ssi.readUint32 = (offset) => {
      switch (offset) {
        case SSI_TXFLR:
          return 0;
        case SSI_RXFLR:
          return chip.rx.length;
        case SSI_SR:
          return SR_TFE | SR_TFNF | (chip.rx.length ? SR_RFNE : 0);
        case SSI_DR0:
          return chip.rx.length ? chip.rx.shift() : 0;
      }
      return read(offset);
    };
    ssi.writeUint32 = (offset, value) => {
      if (offset === SSI_DR0) {
        const answer = chip.selected ? chip.exchange(value & 0xff) : 0;
        if (chip.rx.length < RX_FIFO_DEPTH) chip.rx.push(answer);
        return;
      }
      if (offset === SSI_SSIENR && !value) chip.rx.length = 0;
      write(offset, value);
    };
  }

  select(selected) {
    if (selected === this.selected) return;
    this.selected = selected;
    if (selected) {
      this.command = null;
      this.position = 0;
      this.address = 0;
    } else {
      this.finish();
    }
  }

  // one byte out to the chip, one byte back
  exchange(byte) {
    const position = this.position++;
    if (position === 0) {
      this.command = byte;
      return 0;
    }
    const command = this.command;
    const inAddress = position <= 3;
    if (inAddress) this.address = ((this.address << 8) | byte) >>> 0;
    switch (command) {
      case 0x05: // read status 1
        return (this.busy ? STATUS_BUSY : 0) | (this.writeEnabled ? STATUS_WRITE_ENABLED : 0);
      case 0x35: // read status 2: quad enable set, as the boot loader wants it
        return 0x02;
      case 0x9f:
        return JEDEC_ID[(position - 1) % JEDEC_ID.length];
      case 0x4b: // unique id: 4 dummy bytes, then 8 bytes
        return position > 4 ? UNIQUE_ID[(position - 5) % UNIQUE_ID.length] : 0;
      case 0x03: // read
        return inAddress ? 0 : this.flash[(this.address + position - 4) % this.size];
      case 0x0b: // fast read: a dummy byte after the address
        return position <= 4 ? 0 : this.flash[(this.address + position - 5) % this.size];
      case 0x02: // page program: into the page buffer (the address wraps inside the page); programmed at CS high
        if (!inAddress && this.writeEnabled) {
          const at = (this.address + position - 4) % PAGE;
          this.page[at] = this.pageMask[at] ? this.page[at] & byte : byte;
          this.pageMask[at] = 1;
        }
        return 0;
    }
    return 0;
  }

  finish() {
    const { command, address } = this;
    const erase = { 0x20: 4096, 0x52: 32768, 0xd8: 65536, 0xc7: this.size, 0x60: this.size }[command];
    if (this.busy) {
      // the chip ignores commands while it programs or erases (the ROM polls status until it is done)
    } else if (command === 0x06) {
      this.writeEnabled = true;
    } else if (command === 0x04) {
      this.writeEnabled = false;
    } else if (erase && this.writeEnabled && (this.position >= 4 || erase === this.size)) {
      const start = erase === this.size ? 0 : (address - (address % erase)) % this.size;
      this.erases += erase / 4096;
      this.begin('erase', start, erase, this.eraseNanos, (probability, random) =>
        this.erase(start, erase, probability, random));
    } else if (command === 0x02 && this.writeEnabled) {
      const sent = Math.max(0, this.position - 4);
      const page = this.page.slice();
      const mask = this.pageMask.slice();
      const base = (address - (address % PAGE)) % this.size;
      this.programs++;
      this.programmed += sent;
      this.begin('program', address, sent, this.programNanos, (probability, random) =>
        this.program(base, page, mask, probability, random));
    } else if (command === 0x01 || command === 0x31) {
      this.writeEnabled = false;
    }
    this.pageMask.fill(0);
    this.command = null;
  }

  begin(kind, address, length, nanos, apply) {
    this.writeEnabled = false;
    const now = this.clock.nanos;
    this.busy = { kind, address, length, apply, start: now, end: now + nanos };
    this.busyAlarm.schedule(nanos);
    this.onStart?.(kind, address, length);
  }

  complete() {
    const { kind, address, length, apply } = this.busy;
    apply(1);
    this.busy = null;
    this.onOperation?.(kind, address, length);
  }

  /** The power goes now: the operation under way is left partly done. `random()` gives numbers in [0, 1).
   * Returns what was under way ({kind, address, length, progress}) or null. */
  powerLoss(random) {
    const busy = this.busy;
    if (!busy) return null;
    this.busyAlarm.cancel();
    this.busy = null;
    const progress = (this.clock.nanos - busy.start) / (busy.end - busy.start);
    busy.apply(Math.min(Math.max(progress, 0), 1), random);
    return { kind: busy.kind, address: busy.address, length: busy.length, progress };
  }

  // each bit the operation changes is changed with `probability` (1: all of them)
  program(base, page, mask, probability, random) {
    for (let at = 0; at < PAGE; at++) {
      if (!mask[at]) continue;
      const target = (base + at) % this.size;
      const clearing = this.flash[target] & ~page[at] & 0xff;
      this.flash[target] &= ~randomBits(clearing, probability, random) & 0xff;
    }
  }

  erase(start, length, probability, random) {
    for (let target = start; target < start + length; target++) {
      const setting = ~this.flash[target] & 0xff;
      this.flash[target] |= randomBits(setting, probability, random);
    }
  }
}

function randomBits(bits, probability, random) {
  if (probability >= 1 || !bits) return bits;
  let kept = 0;
  for (let bit = 1; bit < 0x100; bit <<= 1) {
    if (bits & bit && random() < probability) kept |= bit;
  }
  return kept;
}
