/** The lobby panel: who is online (and who is in a game), open challenges, and the chat. */
import type { ChatLine, LobbyUpdate } from '../../lobby/messages.js'
import { byId, el } from './dom.js'

export interface LobbyActions {
  chat (text: string): void
  challenge (to: string): void
  answer (from: string, accept: boolean): void
}

export class LobbyView {
  private you = ''
  private online: string[] = []
  private busy: string[] = []
  private readonly players = byId('players')
  private readonly chatLog = byId('chat')
  private readonly challenges = byId('challenges')
  private readonly notice = byId('notice')

  constructor (private readonly actions: LobbyActions) {
    const form = byId<HTMLFormElement>('chat-form')
    const input = byId<HTMLInputElement>('chat-text')
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      const text = input.value.trim()
      if (text === '') return
      actions.chat(text)
      input.value = ''
    })
  }

  update (update: LobbyUpdate): void {
    switch (update.type) {
      case 'welcome':
        this.you = update.you
        this.showPlayers(update.players, update.busy)
        this.chatLog.replaceChildren(...update.history.map((line) => this.chatLine(line)))
        break
      case 'players': return this.showPlayers(update.players, update.busy)
      case 'chat':
        this.chatLog.append(this.chatLine(update))
        this.chatLog.lastElementChild?.scrollIntoView({ block: 'nearest' })
        break
      case 'challenged': return this.showChallenge(update.from, update.rematch)
      case 'challenge-sent': return this.say(update.rematch ? `Rematch offered to ${update.to}…` : `Challenge sent to ${update.to}…`)
      case 'declined': return this.say(`${update.by} declined.`)
      case 'error': return this.say(update.message)
      case 'match':
        // the game panel names the opponent; nothing here outlives the match
        this.challenges.replaceChildren()
        return this.say('')
    }
  }

  say (text: string): void {
    this.notice.textContent = text
  }

  private showPlayers (players: string[], busy: string[]): void {
    this.online = players
    this.busy = busy
    const youAreBusy = busy.includes(this.you)
    this.players.replaceChildren(...players.map((player) => {
      const item = el('li', { 'data-user': player }, player)
      if (busy.includes(player)) {
        item.dataset.busy = 'true'
        item.append(el('span', { class: 'busy' }, ' (in a game)'))
      }
      if (player === this.you) {
        item.append(el('span', { class: 'you' }, ' (you)'))
      } else if (!busy.includes(player)) {
        const button = el('button', { type: 'button', class: 'challenge' }, 'Challenge') as HTMLButtonElement
        button.disabled = youAreBusy
        button.title = youAreBusy ? 'finish your match first' : `play Connect Four against ${player}`
        button.addEventListener('click', () => this.actions.challenge(player))
        item.append(' ', button)
      }
      return item
    }))
    // a challenger who left, or went into another match, takes their challenge along
    for (const offer of Array.from(this.challenges.children)) {
      const from = (offer as HTMLElement).dataset.from ?? ''
      if (!this.online.includes(from) || this.busy.includes(from)) offer.remove()
    }
  }

  private showChallenge (from: string, rematch: boolean): void {
    this.challenges.querySelector(`[data-from="${CSS.escape(from)}"]`)?.remove()
    const accept = el('button', { type: 'button', class: 'accept' }, 'Accept')
    const decline = el('button', { type: 'button', class: 'decline' }, 'Decline')
    const text = rematch ? `${from} wants a rematch ` : `${from} challenges you to Connect Four `
    const offer = el('div', { class: 'offer', 'data-from': from, 'data-rematch': String(rematch) }, text, accept, ' ', decline)
    accept.addEventListener('click', () => {
      offer.remove()
      this.actions.answer(from, true)
    })
    decline.addEventListener('click', () => {
      offer.remove()
      this.actions.answer(from, false)
    })
    this.challenges.append(offer)
  }

  private chatLine (line: ChatLine): HTMLElement {
    const time = new Date(line.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    return el('li', {}, el('time', {}, time), ' ', el('b', {}, line.from), ': ', line.text)
  }
}
