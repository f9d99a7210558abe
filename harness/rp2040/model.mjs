// An RP2040 (Raspberry Pi Pico) in rp2040js, driven over stdin/stdout by harness/pico_model.py.
//
//   node harness/rp2040/model.mjs --uf2 IMAGE.uf2 [--fs LITTLEFS.img] [--flash FLASH.bin] [--watch 16,17,25]
//                               [--program-us 400] [--erase-us 45000]
//
// --uf2 is written into flash at (block address - 0x10000000); --fs at MicroPython's filesystem offset 0xA0000
// (RPI_PICO: 352 blocks of 4096 B); --flash is a whole flash image saved earlier (a power cut: the flash exactly
// as it was) and is loaded first. --watch lists the GPIOs whose level changes are reported. --program-us and
// --erase-us set how long the flash chip is busy with a page program and an erase (flash-chip.mjs; default 0:
// instant; the W25Q16JV's typical figures are 400 and 45000).
//
// Every message, both ways, is one JSON object per line; bytes travel as base64.
//   in:  {"cdc": B64}                 bytes to the USB CDC console (the REPL)
//        {"uart": N, "data": B64}     bytes for UART N's receiver: they arrive one character time apart at its
//                                     baud rate (uart-pl011.mjs)
//        {"rx_pin": PIN, "data": B64} bytes on a GPIO, as from a scan engine's TX wired to it: they reach the UART
//                                     whose RX the pin is in the function the firmware chose (RP2040 function
//                                     F2), or are lost and answered {"lost": {"pin", "bytes", "function"}}
//        {"gpio": PIN, "level": 0|1}  drive an input pin
//        {"save_flash": PATH}         write the first 2 MB of flash to PATH; answers {"saved": PATH}
//        {"flash_stats": true}        answers {"flash_stats": {"erases": 4 KB sectors, "programs": pages,
//                                     "programmed": bytes}} since the start
//        {"cut_after": N}             a power cut right after the Nth program or erase from now has ended;
//                                     answers {"cut": {"operation", "address", "length", "t_ns", "during"}}
//        {"cut_at": {"op": N, "ns": K, "seed": S}}
//                                     a power cut K ns of emulated time after the Nth program or erase from now
//                                     has started (op 0: K ns from now), at whatever instruction runs then; a
//                                     program or erase under way is left partly done (seed S picks which bits);
//                                     answers {"cut": ...} as above, with "operation" "time" for op 0 and
//                                     "during" {"kind", "address", "length", "progress" 0-1} or null
//        {"uart_stats": true}         answers {"uart_stats": [{"received", "overruns", "lost_disabled"}, ...]} per
//                                     UART: bytes that reached the RX FIFO, found it full, found the UART off
//        {"time": true}               answers {"time": T_NS, "pc": the CPU's program counter, "bauds": each
//                                     UART's baud rate (0 before it is set)}
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
    else if (name === '--program-us') args.programUs = Number(value);
    else if (name === '--erase-us') args.eraseUs = Number(value);
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
// The SDK's set_sys_clock_khz, which MicroPython calls at boot, runs clk_peri from the USB PLL at 48 MHz, and the
// UART dividers are set for that; rp2040js assumes 125 MHz and would make 9600 baud 25,000.
mcu.clkPeri = 48e6;
mcu.logger = new ConsoleLogger(LogLevel.Error);
const bootrom = readFileSync(args.bootrom ?? `${here}bootrom-b1.bin`);
mcu.loadBootrom(new Uint32Array(bootrom.buffer, bootrom.byteOffset, bootrom.length / 4)); // also erases flash
if (args.flash) mcu.flash.set(readFileSync(args.flash).subarray(0, FLASH_SIZE), 0);
if (args.uf2) loadUF2(args.uf2, mcu.flash);
if (args.fs) mcu.flash.set(readFileSync(args.fs), FS_OFFSET);

const now = () => Math.round(simulator.clock.nanos);

// rp2040js alone drops the firmware's flash writes: a chip behind the SSI keeps them (flash-chip.mjs)
const chip = new FlashChip(mcu, simulator.clock, FLASH_SIZE, {
  programNanos: (args.programUs ?? 0) * 1e3,
  eraseNanos: (args.eraseUs ?? 0) * 1e3,
});

// Power cuts. The CPU stops at an instruction boundary; a program or erase under way is left partly done.
let random = seededRandom(1);
let cutAfter = 0; // cut_after: operations left to end
let cutAt = null; // cut_at: {op: operations left to start, ns}
let cutOperation = null; // the operation a cut was counted from
function powerCut() {
  simulator.stop();
  const during = chip.powerLoss(random);
  send({ cut: { ...(cutOperation ?? { operation: 'time', address: 0, length: 0 }), t_ns: now(), during } });
}
const cutAlarm = simulator.clock.createAlarm(powerCut);
chip.onStart = (operation, address, length) => {
  if (cutAt && --cutAt.op === 0) {
    cutOperation = { operation, address, length };
    cutAlarm.schedule(cutAt.ns);
    cutAt = null;
  }
};
chip.onOperation = (operation, address, length) => {
  if (cutAfter > 0 && --cutAfter === 0) {
    cutOperation = { operation, address, length };
    powerCut();
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

// The UART whose RX is GPIO `pin` in the function the firmware chose, or null. The RP2040's UART pins repeat in
// blocks of four (TX, RX, CTS, RTS) in function F2: UART0 on GP0-3, 12-19, 28-29, UART1 on GP4-11, 20-27.
const FUNCTION_UART = 2;
function uartReceivingAt(pin) {
  if (mcu.gpio[pin].functionSelect !== FUNCTION_UART || (pin & 3) !== 1) return null;
  return ((pin + 4) >> 3) & 1;
}

for (const pin of args.watch) {
  const level = (state) => (state === GPIOPinState.High ? 1 : 0);
  mcu.gpio[pin].addListener((state, old) => {
    if (level(state) !== level(old)) send({ gpio: pin, level: level(state), t_ns: now() });
  });
}

const WATCHDOG_BASE = 0x40058; // rp2040js keeps the watchdog among its peripherals by address
const watchdog = mcu.peripherals[WATCHDOG_BASE];
watchdog.onWatchdogTrigger = () => {
  // its periodic alarm would fire again at once, for ever, inside one clock tick: the chip resets here anyway
  watchdog.alarm.enable = false;
  watchdog.timer.enable = false;
  simulator.stop();
  send({ watchdog: now() });
};

// xorshift32: the same seed leaves a partly done operation the same way
function seededRandom(seed) {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}

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
  } else if ('rx_pin' in message) {
    const pin = message.rx_pin;
    const bytes = Buffer.from(message.data, 'base64');
    const uart = uartReceivingAt(pin);
    if (uart === null) send({ lost: { pin, bytes: bytes.length, function: mcu.gpio[pin].functionSelect } });
    else for (const byte of bytes) mcu.uart[uart].feedByte(byte);
  } else if ('gpio' in message) {
    mcu.gpio[message.gpio].setInputValue(!!message.level);
  } else if ('save_flash' in message) {
    writeFileSync(message.save_flash, mcu.flash.subarray(0, FLASH_SIZE));
    send({ saved: message.save_flash });
  } else if ('flash_stats' in message) {
    send({ flash_stats: { erases: chip.erases, programs: chip.programs, programmed: chip.programmed } });
  } else if ('cut_after' in message) {
    cutAfter = message.cut_after;
  } else if ('cut_at' in message) {
    const { op = 0, ns = 0, seed = 1 } = message.cut_at;
    random = seededRandom(seed);
    cutOperation = null;
    if (op > 0) cutAt = { op, ns };
    else cutAlarm.schedule(ns);
  } else if ('time' in message) {
    send({ time: now(), pc: mcu.core.PC, bauds: mcu.uart.map((uart) => (uart.intDivisor ? uart.baudRate : 0)) });
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
