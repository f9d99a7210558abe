// An RP2040 (Raspberry Pi Pico) in rp2040js, driven over stdin/stdout by tools/pico_model.py.
//
//   node tools/rp2040/model.mjs --uf2 IMAGE.uf2 [--fs LITTLEFS.img] [--flash FLASH.bin] [--watch 16,17,25]
//
// --uf2 is written into flash at (block address - 0x10000000); --fs at MicroPython's filesystem offset 0xA0000
// (RPI_PICO: 352 blocks of 4096 B); --flash is a whole flash image saved earlier (a power cut: the flash exactly
// as it was) and is loaded first. --watch lists the GPIOs whose level changes are reported.
//
// Every message, both ways, is one JSON object per line; bytes travel as base64.
//   in:  {"cdc": B64}                 bytes to the USB CDC console (the REPL)
//        {"uart": N, "data": B64}     bytes into UART N's receiver
//        {"gpio": PIN, "level": 0|1}  drive an input pin
//        {"save_flash": PATH}         write the first 2 MB of flash to PATH; answers {"saved": PATH}
//        {"flash_stats": true}        answers {"flash_stats": {"erases": 4 KB sectors, "programs": pages,
//                                     "programmed": bytes}} since the start
//        {"cut_after": N}             stop the CPU right after the Nth program or erase from now (a power cut
//                                     at a chosen flash operation); answers {"cut": {"operation", "address",
//                                     "length", "t_ns"}} when it happens
//        {"uart_stats": true}         answers {"uart_stats": [{"received", "overruns", "lost_disabled"}, ...]} per
//                                     UART: bytes that reached the RX FIFO, found it full, found the UART off
//        {"stop": true}               stop the CPU where it is and exit; answers {"stopped": T_NS}
//   out: {"connected": T_NS}          the console's USB CDC is up
//        {"cdc": B64} / {"uart": N, "data": B64}
//        {"gpio": PIN, "level": 0|1, "t_ns": T_NS}
//        {"watchdog": T_NS}           the watchdog fired (the CPU is stopped: the driver decides what follows)
// T_NS is emulated time in ns (125 MHz, one tick per instruction cycle as rp2040js counts them).
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ConsoleLogger, GPIOPinState, LogLevel, Simulator, USBCDC } from 'rp2040js';
import { FlashChip } from './flash-chip.mjs';
import { modelPL011 } from './uart-pl011.mjs';

const FLASH_START = 0x10000000;
const FLASH_SIZE = 2 * 1024 * 1024; // the Pico's W25Q16
const FS_OFFSET = 0xa0000;
const UF2_MAGIC = [0x0a324655, 0x9e5d5157];
const UF2_NOT_MAIN_FLASH = 0x1;
const here = new URL('.', import.meta.url).pathname;

function parseArgs(argv) {
  const args = { watch: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${name}: a value is missing`);
    if (name === '--uf2') args.uf2 = value;
    else if (name === '--fs') args.fs = value;
    else if (name === '--flash') args.flash = value;
    else if (name === '--bootrom') args.bootrom = value;
    else if (name === '--watch') args.watch = value.split(',').filter(Boolean).map(Number);
    else throw new Error(`unknown option ${name}`);
  }
  return args;
}

// UF2: 512-byte blocks; words 0, 1 magic, 2 flags, 3 target address, 4 payload size; payload from byte 32
function loadUF2(path, flash) {
  const data = readFileSync(path);
  let blocks = 0;
  for (let at = 0; at + 512 <= data.length; at += 512) {
    const word = (i) => data.readUInt32LE(at + 4 * i);
    if (word(0) !== UF2_MAGIC[0] || word(1) !== UF2_MAGIC[1]) throw new Error(`${path}: block ${blocks} is not UF2`);
    if (word(2) & UF2_NOT_MAIN_FLASH) continue;
    const offset = word(3) - FLASH_START;
    if (offset < 0 || offset + word(4) > FLASH_SIZE) throw new Error(`${path}: address ${word(3).toString(16)}`);
    flash.set(data.subarray(at + 32, at + 32 + word(4)), offset);
    blocks++;
  }
  return blocks;
}

const args = parseArgs(process.argv.slice(2));
const send = (message) => process.stdout.write(JSON.stringify(message) + '\n');
const simulator = new Simulator();
const mcu = simulator.rp2040;
mcu.logger = new ConsoleLogger(LogLevel.Error);
const bootrom = readFileSync(args.bootrom ?? `${here}bootrom-b1.bin`);
mcu.loadBootrom(new Uint32Array(bootrom.buffer, bootrom.byteOffset, bootrom.length / 4)); // also erases flash
if (args.flash) mcu.flash.set(readFileSync(args.flash).subarray(0, FLASH_SIZE), 0);
if (args.uf2) loadUF2(args.uf2, mcu.flash);
if (args.fs) mcu.flash.set(readFileSync(args.fs), FS_OFFSET);

setInterval(() => process.stderr.write(JSON.stringify({t: simulator.clock.nanos, exc: globalThis.EXC}) + '\n'), 500);
const now = () => Math.round(simulator.clock.nanos);

// rp2040js alone drops the firmware's flash writes: a chip behind the SSI keeps them (flash-chip.mjs)
const chip = new FlashChip(mcu, FLASH_SIZE);
let cutAfter = 0;
chip.onOperation = (operation, address, length) => {
  if (cutAfter > 0 && --cutAfter === 0) {
    simulator.stop();
    send({ cut: { operation, address, length, t_ns: now() } });
  }
};

// The console. rp2040js's CDC host keeps 512 bytes for the device and drops the rest: hold ours back.
const cdc = new USBCDC(mcu.usbCtrl);
const cdcPending = [];
let cdcConnected = false;
// A USB host sends OUT data only when it has some. rp2040js's CDC host answers every OUT buffer the device
// arms at once, with zero bytes when it has none: an interrupt every few microseconds that a board never sees
// (it took about two thirds of the CPU). An empty answer is held until there are bytes for the device.
const answerRead = mcu.usbCtrl.onEndpointRead;
let heldRead = null;
mcu.usbCtrl.onEndpointRead = (endpoint, size) => {
  if (endpoint === cdc.outEndpoint && cdc.txFIFO.itemCount === 0) heldRead = size;
  else answerRead(endpoint, size);
};
function pumpCDC() {
  if (!cdcConnected) return;
  while (cdcPending.length && cdc.txFIFO.itemCount < cdc.txFIFO.size) cdc.sendSerialByte(cdcPending.shift());
  if (heldRead !== null && cdc.txFIFO.itemCount) {
    const size = heldRead;
    heldRead = null;
    answerRead(cdc.outEndpoint, size);
  }
}
cdc.onDeviceConnected = () => {
  cdcConnected = true;
  send({ connected: now() });
};
cdc.onSerialData = (bytes) => send({ cdc: Buffer.from(bytes).toString('base64') });

mcu.uart.forEach((uart, n) => {
  // the line is bursty: gather the bytes of one run of the CPU into one message
  let pending = [];
  uart.onByte = (value) => {
    if (pending.length === 0) setImmediate(() => {
      send({ uart: n, data: Buffer.from(pending).toString('base64') });
      pending = [];
    });
    pending.push(value);
  };
});

// the PL011's interrupt rules and a wire's pace (uart-pl011.mjs): with rp2040js's alone, an open UART's
// interrupt handler never returns
const uartStats = mcu.uart.map((uart) => modelPL011(uart, simulator.clock));

for (const pin of args.watch) {
  const level = (state) => (state === GPIOPinState.High ? 1 : 0);
  mcu.gpio[pin].addListener((state, old) => {
    if (level(state) !== level(old)) send({ gpio: pin, level: level(state), t_ns: now() });
  });
}

const WATCHDOG_BASE = 0x40058; // rp2040js keeps the watchdog among its peripherals by address
mcu.peripherals[WATCHDOG_BASE].onWatchdogTrigger = () => {
  simulator.stop();
  send({ watchdog: now() });
};

function stop() {
  simulator.stop();
  send({ stopped: now() });
  process.exit(0);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  const message = JSON.parse(line);
  if ('cdc' in message) {
    cdcPending.push(...Buffer.from(message.cdc, 'base64'));
    pumpCDC();
  } else if ('uart' in message) {
    for (const byte of Buffer.from(message.data, 'base64')) mcu.uart[message.uart].feedByte(byte);
  } else if ('gpio' in message) {
    mcu.gpio[message.gpio].setInputValue(!!message.level);
  } else if ('save_flash' in message) {
    writeFileSync(message.save_flash, mcu.flash.subarray(0, FLASH_SIZE));
    send({ saved: message.save_flash });
  } else if ('flash_stats' in message) {
    send({ flash_stats: { erases: chip.erases, programs: chip.programs, programmed: chip.programmed } });
  } else if ('cut_after' in message) {
    cutAfter = message.cut_after;
  } else if ('uart_stats' in message) {
    send({ uart_stats: uartStats });
  } else if ('stop' in message) {
    stop();
  } else {
    throw new Error(`unknown message ${line}`);
  }
}).on('close', stop);

// between runs of the CPU (rp2040js runs up to a million instructions, then yields to Node)
setInterval(pumpCDC, 1);
mcu.core.PC = 0x10000000;
simulator.execute();
