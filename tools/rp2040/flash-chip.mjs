// The Pico's QSPI flash chip (a W25Q16-like SPI NOR), for the commands the boot ROM's flash routines send.
//
// rp2040js keeps flash as a plain array read through XIP; its SSI answers only the status read, so a program
// or erase from the firmware is lost. This module puts a chip behind the SSI for the transfers in which the
// firmware drives chip select itself (the ROM's and the SDK's flash routines force CS low through IO_QSPI's SS
// override); XIP reads stay rp2040js's own.
//
// Modelled: write enable, page program (bits only cleared, address wrapping inside the 256-byte page), 4 KB /
// 32 KB / 64 KB / chip erase, reads, status (never busy), JEDEC and unique id. Not modelled: timing (an erase
// is instant), status-register writes, quad modes in direct SPI.

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

export class FlashChip {
  /** Counts since the model started: `erases` (4 KB sectors erased), `programs` (page programs), `programmed`
   * (bytes). `onOperation(kind, address, length)` runs after each program or erase ends (chip select high). */
  constructor(mcu, size) {
    this.flash = mcu.flash;
    this.size = size;
    this.erases = 0;
    this.programs = 0;
    this.programmed = 0;
    this.onOperation = null;
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
      case 0x05: // read status 1: never busy
        return this.writeEnabled ? 0x02 : 0x00;
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
      case 0x02: // page program: bits go from 1 to 0 only; the address wraps inside its page
        if (!inAddress && this.writeEnabled) {
          const offset = position - 4;
          const page = this.address - (this.address % PAGE);
          const target = (page + ((this.address + offset) % PAGE)) % this.size;
          this.flash[target] &= byte;
          this.programmed++;
        }
        return 0;
    }
    return 0;
  }

  finish() {
    const { command, address } = this;
    const erase = { 0x20: 4096, 0x52: 32768, 0xd8: 65536, 0xc7: this.size, 0x60: this.size }[command];
    if (command === 0x06) {
      this.writeEnabled = true;
    } else if (command === 0x04) {
      this.writeEnabled = false;
    } else if (erase && this.writeEnabled && (this.position >= 4 || erase === this.size)) {
      const start = erase === this.size ? 0 : (address - (address % erase)) % this.size;
      this.flash.fill(0xff, start, start + erase);
      this.erases += erase / 4096;
      this.writeEnabled = false;
      this.onOperation?.('erase', start, erase);
    } else if (command === 0x02 && this.writeEnabled) {
      this.programs++;
      this.writeEnabled = false;
      this.onOperation?.('program', address, Math.max(0, this.position - 4));
    } else if (command === 0x01 || command === 0x31) {
      this.writeEnabled = false;
    }
    this.command = null;
  }
}
