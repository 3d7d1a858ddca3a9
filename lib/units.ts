/** Units the configuration and the messages about it count in. */
export const SECOND = 1000
export const KIB = 1024
export const MIB = 1024 * KIB
